/*
 * ops_omp.h - the OpenMP pragmas of the kernels, written so that a NO_OMP=1 build compiles them
 * to nothing (and stays free of -Wunknown-pragmas warnings).
 */
#ifndef LT_OPS_OMP_H
#define LT_OPS_OMP_H

#ifdef _OPENMP
#include <omp.h>
#endif

#define OPS_STR(x) #x
#ifdef _OPENMP
// `#pragma omp parallel for schedule(static) <clauses>`
#define OMP_PARALLEL_FOR(clauses) _Pragma(OPS_STR(omp parallel for schedule(static) clauses))
// any `#pragma omp ...`
#define OMP_PRAGMA(x) _Pragma(#x)
#else
#define OMP_PARALLEL_FOR(clauses)
#define OMP_PRAGMA(x)
#endif

#endif
