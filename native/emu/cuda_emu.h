// TRANSITIONAL (replaced by the emulator's umbrella header).
#pragma once
#include "cuda_emu_runtime.h"
#if __has_include("cuda_emu_exec.h")
#include "cuda_emu_exec.h"
#else
namespace secvit::emu {
inline const char* last_launch_message() { return ""; }
}
#endif
