# Cross-compiling the addon for linux-arm64 (the prebuilt scripts/prebuild.mjs makes) with
# Debian's g++-aarch64-linux-gnu. The Node-API headers are architecture-independent and an
# addon links no Node library, so nothing else of arm64 is needed.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Headers: the CUDA headers the emulator compiles against live on the build host.
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
