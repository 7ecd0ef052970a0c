// hostdev.h: HOSTDEV marks the small math functions that both engines compile: plain functions
// under gcc, __host__ __device__ under nvcc, so the CPU tests the very code the GPU kernels run.
#ifndef HOSTDEV_H
#define HOSTDEV_H
#ifdef __CUDACC__
#define HOSTDEV __host__ __device__
#else
#define HOSTDEV
#endif
#endif // HOSTDEV_H
