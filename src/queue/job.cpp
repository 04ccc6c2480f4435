#include "queue/job.h"

namespace llmq {

Job::Job(std::string id, ValidatedRequest request, std::optional<Clock::time_point> deadline,
         std::shared_ptr<JobSink> sink, std::optional<Clock::time_point> arrived)
    : id_(std::move(id)),
      request_(std::move(request)),
      arrived_(arrived.value_or(Clock::now())),
      deadline_(deadline),
      sink_(std::move(sink)) {}

}  // namespace llmq
