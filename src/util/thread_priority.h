// Naming a thread and lowering its CPU priority. On Linux both belong to a thread (its tid) and the
// threads it creates inherit them. Background work (llama.cpp's decode threads at --worker-nice,
// the Elasticsearch shipper) uses it to stay out of the way of what a client waits for, under a
// name that `top -H` and `ps -L` show.
#pragma once

#include <string_view>

namespace llmq {

// Sets the calling thread's niceness to `nice` when it is positive; on failure logs a warning
// naming `what` and leaves the priority as it was.
void lower_this_thread_priority(int nice, std::string_view what);

// Names the calling thread; Linux keeps the first 15 bytes.
void name_this_thread(const char* name);

}  // namespace llmq
