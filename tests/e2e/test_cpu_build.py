"""The llama.cpp build against the CPU that runs it (docs/architecture.md, "The CPU").

llama.cpp's AMX kernels fault on some virtualised Xeons (Sapphire/Granite Rapids), and a build
tuned to one CPU dies of SIGILL on a CPU without its instruction sets. These tests hold the
three defences: scripts/llama.sh never compiles AMX unless asked, and keys its cache by the
instruction sets it compiled; llmq reports what it runs (`--version`, `llmq_build_info`, the log)
and refuses a build this CPU cannot run; and it is not ready before a warm-up decode has run
every slot's path on this CPU.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from llmq_e2e import REPO, LlmqServer, llmq_bin, sanitized_build, server_env
from metrics_util import scrape

CPU_FEATURES = REPO / "scripts" / "cpu_features.sh"

# /proc/cpuinfo of a 2-core Sapphire Rapids guest (the CPU the AMX crash was seen on), abridged.
SAPPHIRE_RAPIDS = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"
    "flags\t\t: fpu sse sse2 pni ssse3 fma sse4_1 sse4_2 avx f16c bmi2 avx2 avx512f avx512dq "
    "avx512cd avx512bw avx512vl avx512vbmi avx512_bf16 avx512_vnni avx_vnni amx_bf16 amx_tile "
    "amx_int8\n"
)


def cpu_features(tmp_path: Path, cpuinfo: str, *args: str) -> tuple[str, dict[str, str]]:
    """scripts/cpu_features.sh's cache tag and its -D options as a dict, for a given cpuinfo."""
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo)
    out = subprocess.run(["bash", str(CPU_FEATURES), *args], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "LLMQ_CPUINFO": str(info)}, check=True)
    tag, *options = out.stdout.split()
    return tag, dict(o.removeprefix("-D").split("=", 1) for o in options)


def version_report() -> str:
    return subprocess.run([str(llmq_bin()), "--version"], capture_output=True, text=True,
                          env=server_env(), timeout=30, check=True).stdout


def test_amx_is_not_compiled_for_an_amx_cpu_unless_asked(tmp_path):
    tag, options = cpu_features(tmp_path, SAPPHIRE_RAPIDS, "host")
    assert options["GGML_NATIVE"] == "OFF", "-march=native would turn AMX on by itself"
    assert {options[k] for k in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")} == {"OFF"}
    assert options["GGML_AVX512"] == options["GGML_AVX512_VNNI"] == "ON", "the rest of the CPU is used"
    assert tag.endswith("-noamx")

    amx_tag, amx_options = cpu_features(tmp_path, SAPPHIRE_RAPIDS, "host", "1")
    assert amx_options["GGML_AMX_INT8"] == "ON"
    assert amx_tag.endswith("-amx") and amx_tag != tag, "an AMX build must not share a cache key"


def test_the_cache_key_names_the_instruction_sets(tmp_path):
    avx2_only = SAPPHIRE_RAPIDS.replace(" avx512", " no512").replace(" amx", " noamx")
    tag_avx2, options = cpu_features(tmp_path, avx2_only, "host")
    assert options["GGML_AVX512"] == "OFF" and options["GGML_AVX2"] == "ON"
    tag_avx512, _ = cpu_features(tmp_path, SAPPHIRE_RAPIDS, "host")
    assert tag_avx2 != tag_avx512, "a build for one CPU would be reused on a CPU lacking its sets"

    baseline_tag, baseline = cpu_features(tmp_path, SAPPHIRE_RAPIDS, "x86-64-v3")
    assert baseline_tag == "x86-64-v3-noamx"
    assert [k for k, v in baseline.items() if v == "ON"] == [
        "GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2"]


def test_version_reports_llama_cpp_and_the_cpu_features_in_use():
    report = version_report()
    assert report.startswith("llmq "), report
    assert "llama.cpp " in report and "ggml " in report
    features = next(line for line in report.splitlines() if line.startswith("CPU features in use:"))
    assert "AMX kernels off" in features, "the default build must not carry the AMX kernels"
    assert "AMX_INT8" not in features
    assert "AVX2" in features or "NEON" in features, features
    # The features are llama.cpp's own report, not a copy of the build options.
    system = next(line for line in report.splitlines() if line.startswith("llama.cpp system info:"))
    assert "CPU : " in system and "AMX_INT8 = 1" not in system


def test_the_default_build_runs_on_this_cpu():
    """scripts/llama.sh built for this machine's CPU: nothing it needs is missing here."""
    report = version_report()
    features = report.split("CPU features in use:", 1)[1].split("(", 1)[0].split()
    flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    flags = set(flags.split(":", 1)[1].split())
    needs = {"AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "BMI2": "bmi2",
             "AVX512": "avx512f", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
             "AVX512_VBMI": "avx512vbmi", "AVX_VNNI": "avx_vnni"}
    assert [f for f in features if f in needs and needs[f] not in flags] == []


def test_build_info_on_metrics_matches_version(server):
    report = version_report()
    m = scrape(server.base_url)
    series = [(dict(labels), v) for (name, labels), v in m.samples.items() if name == "llmq_build_info"]
    assert len(series) == 1 and series[0][1] == 1
    labels = series[0][0]
    assert labels["amx"] == "off"
    assert f"CPU features in use: {labels['cpu_features']} (AMX kernels off)" in report
    assert labels["llama_cpp"] and labels["llama_cpp"] in report
    assert labels["version"] in report.splitlines()[0]


def test_not_ready_before_the_warm_up_decode(tmp_path):
    """/readyz turns 200 only after every slot has decoded on this CPU, and the log says so."""
    s = LlmqServer(tmp_path, {"slots": 4}, name="warmup")
    with open(s.stdout_path, "wb") as out, open(s.stderr_path, "wb") as err:
        s.proc = subprocess.Popen(s.argv(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                  env=server_env(s.env), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert s.alive(), s.stderr_text()
            try:
                ready = httpx.get(s.base_url + "/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("never ready")
        log = s.stdout_path.read_text()
        warm = [line for line in log.splitlines() if "warm-up:" in line]
        assert warm, "ready before the warm-up decode ran:\n" + log
        # 4 slots: one longer chunk and three short ones, then a step of all four.
        assert "over 4 slots" in warm[0] and "in 2 decodes" in warm[0], warm[0]
        assert "AMX kernels off" in log, "the start-up log names the CPU features in use"
        s.assert_serving()
    finally:
        s.stop()


def test_a_fault_names_the_phase_and_the_cpu_features(tmp_path):
    """A kernel fault kills llmq as before (same signal), but leaves one line that says what it
    was doing and which CPU features the llama.cpp build uses. Sanitizer builds keep their own
    report instead."""
    if sanitized_build():
        pytest.skip("a sanitizer build reports faults with its own handler")
    s = LlmqServer(tmp_path, name="fault").start()
    try:
        s.proc.send_signal(signal.SIGSEGV)
        assert s.proc.wait(10) == -signal.SIGSEGV
        report = [line for line in s.stderr_text().splitlines() if line.startswith("llmq: fatal")]
        assert len(report) == 1, s.stderr_text()
        assert report[0].startswith("llmq: fatal SIGSEGV during serving; llama.cpp "), report[0]
        assert "CPU features in use: " in report[0] and "AVX" in report[0]
    finally:
        s.stop()
