// mpi_adapter_diff.c - compares two safetensors files of F32 tensors (adapters written by
// `loratune train`) tensor by tensor: prints the largest absolute difference, where it is, and
// the largest difference relative to the tensor's largest magnitude; exits 1 when that exceeds
// the tolerance given (or when the files do not hold the same tensors), 2 on bad usage.
// usage: mpi_adapter_diff A.safetensors B.safetensors TOL
#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: mpi_adapter_diff A.safetensors B.safetensors TOL\n");
        return 2;
    }
    double tol = strtod(argv[3], NULL);
    lt_err err = {0};
    lt_safetensors *fa = NULL, *fb = NULL;
    if (lt_safetensors_open(argv[1], &fa, &err) || lt_safetensors_open(argv[2], &fb, &err)) {
        fprintf(stderr, "mpi_adapter_diff: %s\n", err.msg);
        lt_safetensors_close(fa);
        return 1;
    }
    int rc = 0, n = lt_safetensors_count(fa);
    double worst_abs = 0, worst_rel = 0;
    const char *worst_name = "";
    int64_t worst_i = 0;
    if (n != lt_safetensors_count(fb)) {
        fprintf(stderr, "mpi_adapter_diff: %d tensors against %d\n", n, lt_safetensors_count(fb));
        rc = 1;
    }
    for (int k = 0; k < n && !rc; k++) {
        const lt_st_tensor *ta = lt_safetensors_at(fa, k);
        const lt_st_tensor *tb = lt_safetensors_find(fb, ta->name);
        if (!tb || ta->dtype != LT_DTYPE_F32 || tb->dtype != LT_DTYPE_F32 || ta->numel != tb->numel) {
            fprintf(stderr, "mpi_adapter_diff: %s: missing or not F32 of the same size\n", ta->name);
            rc = 1;
            break;
        }
        const float *a = ta->data, *b = tb->data;
        double amax = 0, dmax = 0;
        int64_t imax = 0;
        for (int64_t i = 0; i < ta->numel; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (fabs((double)a[i]) > amax) amax = fabs((double)a[i]);
            if (d > dmax || isnan(d)) dmax = isnan(d) ? INFINITY : d, imax = i;
        }
        double rel = amax > 0 ? dmax / amax : dmax;
        if (dmax > worst_abs) worst_abs = dmax, worst_name = ta->name, worst_i = imax;
        if (rel > worst_rel) worst_rel = rel;
    }
    if (!rc) {
        printf("max |a-b| = %.3g (%s[%lld]), max |a-b| / max|a| per tensor = %.3g (tolerance %g)\n",
               worst_abs, worst_name, (long long)worst_i, worst_rel, tol);
        if (!(worst_rel <= tol)) rc = 1;
    }
    lt_safetensors_close(fa);
    lt_safetensors_close(fb);
    return rc;
}
