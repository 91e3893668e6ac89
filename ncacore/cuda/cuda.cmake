# ncacore_cuda: the fused GPU generator. Included by the top-level
# CMakeLists.txt only when nvcc was found (CUDA language already enabled).
#
# Bit-identity with the CPU core needs the float math exactly as written:
# no FMA contraction (the shared headers use explicit fma), IEEE division and
# sqrt, denormals kept, no fast-math.

# sm_80 and sm_90 machine code, plus compute_90 PTX for newer cards. Our own
# variable: CMake fills CMAKE_CUDA_ARCHITECTURES with nvcc's default (sm_75)
# when it is not given, so it cannot tell us what the user asked for.
set(NCALM_CUDA_ARCHS "80-real;90-real;90-virtual" CACHE STRING "CUDA architectures of the ncalm kernels")

add_library(ncacore_cuda STATIC
  ${CMAKE_CURRENT_LIST_DIR}/device.cu
  ${CMAKE_CURRENT_LIST_DIR}/simulate.cu
  ${CMAKE_CURRENT_LIST_DIR}/filter.cpp
)
target_include_directories(ncacore_cuda PUBLIC
  ${CMAKE_CURRENT_LIST_DIR}/include
  ${CMAKE_CURRENT_LIST_DIR}/../include
)
set_target_properties(ncacore_cuda PROPERTIES
  CUDA_ARCHITECTURES "${NCALM_CUDA_ARCHS}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  CUDA_SEPARABLE_COMPILATION OFF
  POSITION_INDEPENDENT_CODE ON
)
target_compile_options(ncacore_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -prec-div=true -prec-sqrt=true -ftz=false
                             -Xcompiler=-ffp-contract=off,-fno-fast-math --threads=0>
)
# cudart static: the module then needs only the driver at run time.
target_link_libraries(ncacore_cuda PUBLIC CUDA::cudart_static ncacore)
