// Marks functions compiled for both host and device, so the CUDA kernels run
// the very same arithmetic as the CPU core (the bit-identity contract).
#pragma once

#if defined(__CUDACC__)
#define NCA_HD __host__ __device__ __forceinline__
#else
#define NCA_HD inline
#endif
