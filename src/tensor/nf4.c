/*
 * nf4.c - bitsandbytes' 4-bit (NF4, FP4) blockwise quantisation with double quantisation of the
 * block scales, the 8-bit blockwise dynamic code, and row conversion of NF4/FP4 matrices for the
 * tiled matmuls (lt_mat_row_to_f32).
 *
 * What: the semantics documented in tensor.h, value for value those of bitsandbytes 0.50's
 * pure-PyTorch kernels (backends/default/ops.py: quantize_4bit, quantize_blockwise,
 * dequantize_4bit, dequantize_blockwise) and functional.py (get_4bit_type, create_dynamic_map,
 * quantize_4bit with compress_statistics: offset = mean, nested blocks of 256).
 * tests/fixtures/nf4 holds their outputs (tools/make_nf4_fixtures.py) for tests/unit/test_nf4.c.
 * What not: bnb's native CPU library searches the 8-bit code approximately (in the fixtures 1%
 * of the values near a midpoint, and small values of the unsigned map more often, get a farther
 * code); CUDA's dQuantize and the PyTorch kernels pick the nearest, as here. No intrinsics:
 * conversion builds a 16-entry table of scaled code values per block (the same f32 products bnb
 * computes) and copies from it (~1 ns per value, well below the sgemm's cost per weight at
 * training batch sizes); the quantiser's loops are shaped for the compiler to vectorise.
 * References: Dettmers et al., QLoRA (arXiv 2305.14314), NormalFloat and double quantisation;
 * Dettmers et al., 8-bit Optimizers via Block-wise Quantization (arXiv 2110.02861).
 */
#include "core/core.h"
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// code books

// bnb get_4bit_type("nf4"): quantiles of N(0, 1) normalised to [-1, 1], with an exact zero.
static const float nf4_code[16] = {
    -1.0f,           -0x1.647362p-1f, -0x1.0cd66p-1f,  -0x1.94654p-2f,
    -0x1.23449ap-2f, -0x1.7a6a7ep-3f, -0x1.74f0e2p-4f, 0.0f,
    0x1.45f5fep-4f,  0x1.4995c6p-3f,  0x1.f809bap-3f,  0x1.5a0674p-2f,
    0x1.c3497p-2f,   0x1.200f56p-1f,  0x1.722766p-1f,  1.0f,
};
// bnb get_4bit_type("fp4"): [0, 0.0625, 8, 12, 4, 6, 2, 3, and their negatives] / 12 (f32).
static const float fp4_code[16] = {
    0.0f, 0x1.555556p-8f,  0x1.555556p-1f,  1.0f,  0x1.555556p-2f,  0.5f,  0x1.555556p-3f,  0.25f,
    0.0f, -0x1.555556p-8f, -0x1.555556p-1f, -1.0f, -0x1.555556p-2f, -0.5f, -0x1.555556p-3f, -0.25f,
};
// FP4 code indices in increasing order of value (torch.argsort of fp4_code, as bnb computes it).
static const uint8_t fp4_order[16] = {11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3};

// bnb create_dynamic_map(signed=True) and (signed=False), max_exponent_bits 7, total_bits 8.
static const float dyn8_signed[256] = {
    -0x1.fc6666p-1f,  -0x1.f53334p-1f,  -0x1.eep-1f,      -0x1.e6ccccp-1f,
    -0x1.df999ap-1f,  -0x1.d86666p-1f,  -0x1.d13334p-1f,  -0x1.cap-1f,
    -0x1.c2ccccp-1f,  -0x1.bb999ap-1f,  -0x1.b46666p-1f,  -0x1.ad3334p-1f,
    -0x1.a6p-1f,      -0x1.9eccccp-1f,  -0x1.97999ap-1f,  -0x1.906666p-1f,
    -0x1.893334p-1f,  -0x1.82p-1f,      -0x1.7accccp-1f,  -0x1.73999ap-1f,
    -0x1.6c6668p-1f,  -0x1.653334p-1f,  -0x1.5ep-1f,      -0x1.56ccccp-1f,
    -0x1.4f999ap-1f,  -0x1.486668p-1f,  -0x1.413334p-1f,  -0x1.3ap-1f,
    -0x1.32ccccp-1f,  -0x1.2b999ap-1f,  -0x1.246668p-1f,  -0x1.1d3334p-1f,
    -0x1.16p-1f,      -0x1.0eccccp-1f,  -0x1.079998p-1f,  -0x1.006666p-1f,
    -0x1.f26664p-2f,  -0x1.e4p-2f,      -0x1.d59998p-2f,  -0x1.c73334p-2f,
    -0x1.b8ccccp-2f,  -0x1.aa6666p-2f,  -0x1.9cp-2f,      -0x1.8d9998p-2f,
    -0x1.7f3334p-2f,  -0x1.70ccccp-2f,  -0x1.626666p-2f,  -0x1.54p-2f,
    -0x1.459998p-2f,  -0x1.373334p-2f,  -0x1.28ccccp-2f,  -0x1.1a6668p-2f,
    -0x1.0cp-2f,      -0x1.fb3332p-3f,  -0x1.de6666p-3f,  -0x1.c1999ap-3f,
    -0x1.a4ccccp-3f,  -0x1.88p-3f,      -0x1.6b3334p-3f,  -0x1.4e6666p-3f,
    -0x1.31999ap-3f,  -0x1.14ccccp-3f,  -0x1.fp-4f,       -0x1.b66668p-4f,
    -0x1.93d70ap-4f,  -0x1.8851eep-4f,  -0x1.7ccccep-4f,  -0x1.7147aep-4f,
    -0x1.65c29p-4f,   -0x1.5a3d7p-4f,   -0x1.4eb854p-4f,  -0x1.433334p-4f,
    -0x1.37ae14p-4f,  -0x1.2c28f6p-4f,  -0x1.20a3d6p-4f,  -0x1.151ebap-4f,
    -0x1.09999ap-4f,  -0x1.fc28f6p-5f,  -0x1.e51ebap-5f,  -0x1.ce147ap-5f,
    -0x1.b70a3ep-5f,  -0x1.ap-5f,       -0x1.88f5c2p-5f,  -0x1.71eb86p-5f,
    -0x1.5ae146p-5f,  -0x1.43d70ap-5f,  -0x1.2ccccep-5f,  -0x1.15c29p-5f,
    -0x1.fd70a4p-6f,  -0x1.cf5c2ap-6f,  -0x1.a147aep-6f,  -0x1.733334p-6f,
    -0x1.451ebap-6f,  -0x1.170a3ep-6f,  -0x1.d1eb86p-7f,  -0x1.75c29p-7f,
    -0x1.3e76c8p-7f,  -0x1.2c083p-7f,   -0x1.19999ap-7f,  -0x1.072b02p-7f,
    -0x1.e978d4p-8f,  -0x1.c49ba6p-8f,  -0x1.9fbe76p-8f,  -0x1.7ae148p-8f,
    -0x1.56041ap-8f,  -0x1.3126e8p-8f,  -0x1.0c49bap-8f,  -0x1.ced914p-9f,
    -0x1.851eb8p-9f,  -0x1.3b645ap-9f,  -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d5p-11f,   -0x1.3dd982p-11f,
    -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f,
    -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0.0f,
    0x1.27476ep-21f,  0x1.b43528p-19f,  0x1.040bfep-17f,  0x1.64840cp-16f,
    0x1.6f0068p-15f,  0x1.15df66p-14f,  0x1.743e96p-14f,  0x1.47ae16p-13f,
    0x1.19ce0ap-12f,  0x1.8fc506p-12f,  0x1.02de02p-11f,  0x1.3dd982p-11f,
    0x1.78d5p-11f,    0x1.b3d07cp-11f,  0x1.eecbfep-11f,  0x1.4fdf3ap-10f,
    0x1.e353f8p-10f,  0x1.3b645ap-9f,   0x1.851eb8p-9f,   0x1.ced914p-9f,
    0x1.0c49bap-8f,   0x1.3126e8p-8f,   0x1.56041ap-8f,   0x1.7ae148p-8f,
    0x1.9fbe76p-8f,   0x1.c49ba6p-8f,   0x1.e978d4p-8f,   0x1.072b02p-7f,
    0x1.19999ap-7f,   0x1.2c083p-7f,    0x1.3e76c8p-7f,   0x1.75c29p-7f,
    0x1.d1eb86p-7f,   0x1.170a3ep-6f,   0x1.451ebap-6f,   0x1.733334p-6f,
    0x1.a147aep-6f,   0x1.cf5c2ap-6f,   0x1.fd70a4p-6f,   0x1.15c29p-5f,
    0x1.2ccccep-5f,   0x1.43d70ap-5f,   0x1.5ae146p-5f,   0x1.71eb86p-5f,
    0x1.88f5c2p-5f,   0x1.ap-5f,        0x1.b70a3ep-5f,   0x1.ce147ap-5f,
    0x1.e51ebap-5f,   0x1.fc28f6p-5f,   0x1.09999ap-4f,   0x1.151ebap-4f,
    0x1.20a3d6p-4f,   0x1.2c28f6p-4f,   0x1.37ae14p-4f,   0x1.433334p-4f,
    0x1.4eb854p-4f,   0x1.5a3d7p-4f,    0x1.65c29p-4f,    0x1.7147aep-4f,
    0x1.7ccccep-4f,   0x1.8851eep-4f,   0x1.93d70ap-4f,   0x1.b66668p-4f,
    0x1.fp-4f,        0x1.14ccccp-3f,   0x1.31999ap-3f,   0x1.4e6666p-3f,
    0x1.6b3334p-3f,   0x1.88p-3f,       0x1.a4ccccp-3f,   0x1.c1999ap-3f,
    0x1.de6666p-3f,   0x1.fb3332p-3f,   0x1.0cp-2f,       0x1.1a6668p-2f,
    0x1.28ccccp-2f,   0x1.373334p-2f,   0x1.459998p-2f,   0x1.54p-2f,
    0x1.626666p-2f,   0x1.70ccccp-2f,   0x1.7f3334p-2f,   0x1.8d9998p-2f,
    0x1.9cp-2f,       0x1.aa6666p-2f,   0x1.b8ccccp-2f,   0x1.c73334p-2f,
    0x1.d59998p-2f,   0x1.e4p-2f,       0x1.f26664p-2f,   0x1.006666p-1f,
    0x1.079998p-1f,   0x1.0eccccp-1f,   0x1.16p-1f,       0x1.1d3334p-1f,
    0x1.246668p-1f,   0x1.2b999ap-1f,   0x1.32ccccp-1f,   0x1.3ap-1f,
    0x1.413334p-1f,   0x1.486668p-1f,   0x1.4f999ap-1f,   0x1.56ccccp-1f,
    0x1.5ep-1f,       0x1.653334p-1f,   0x1.6c6668p-1f,   0x1.73999ap-1f,
    0x1.7accccp-1f,   0x1.82p-1f,       0x1.893334p-1f,   0x1.906666p-1f,
    0x1.97999ap-1f,   0x1.9eccccp-1f,   0x1.a6p-1f,       0x1.ad3334p-1f,
    0x1.b46666p-1f,   0x1.bb999ap-1f,   0x1.c2ccccp-1f,   0x1.cap-1f,
    0x1.d13334p-1f,   0x1.d86666p-1f,   0x1.df999ap-1f,   0x1.e6ccccp-1f,
    0x1.eep-1f,       0x1.f53334p-1f,   0x1.fc6666p-1f,   0x1p+0f,
};
static const float dyn8_unsigned[256] = {
    0.0f,
    0x1.5cf754p-22f,
    0x1.a0133p-21f,
    0x1.1d367p-19f,
    0x1.2599ecp-18f,
    0x1.bc98a2p-18f,
    0x1.29cbaap-17f,
    0x1.0624dcp-16f,
    0x1.c2e34p-16f,
    0x1.3fd0dp-15f,
    0x1.9e3p-15f,
    0x1.fc8f34p-15f,
    0x1.2d7732p-14f,
    0x1.5ca6c8p-14f,
    0x1.8bd662p-14f,
    0x1.0cb296p-13f,
    0x1.82a994p-13f,
    0x1.f8a092p-13f,
    0x1.374bc8p-12f,
    0x1.724744p-12f,
    0x1.ad42c6p-12f,
    0x1.e83e44p-12f,
    0x1.119ce2p-11f,
    0x1.2f1aap-11f,
    0x1.4c986p-11f,
    0x1.6a162p-11f,
    0x1.8793dep-11f,
    0x1.a511ap-11f,
    0x1.c28f5ep-11f,
    0x1.e00d1cp-11f,
    0x1.fd8adcp-11f,
    0x1.2b020cp-10f,
    0x1.74bc6ap-10f,
    0x1.be76c8p-10f,
    0x1.041894p-9f,
    0x1.28f5c2p-9f,
    0x1.4dd2fp-9f,
    0x1.72b02p-9f,
    0x1.978d4ep-9f,
    0x1.bc6a8p-9f,
    0x1.e147aep-9f,
    0x1.03126ep-8f,
    0x1.158104p-8f,
    0x1.27ef9ep-8f,
    0x1.3a5e34p-8f,
    0x1.4cccccp-8f,
    0x1.5f3b64p-8f,
    0x1.71a9fap-8f,
    0x1.841894p-8f,
    0x1.96872ap-8f,
    0x1.a8f5c2p-8f,
    0x1.bb645cp-8f,
    0x1.cdd2fp-8f,
    0x1.e0418ap-8f,
    0x1.f2b01ep-8f,
    0x1.028f5cp-7f,
    0x1.0bc6a8p-7f,
    0x1.14fdf2p-7f,
    0x1.1e354p-7f,
    0x1.276c8ap-7f,
    0x1.30a3d6p-7f,
    0x1.39db24p-7f,
    0x1.43126ep-7f,
    0x1.5eb854p-7f,
    0x1.8ccccep-7f,
    0x1.bae146p-7f,
    0x1.e8f5c4p-7f,
    0x1.0b851ep-6f,
    0x1.228f5ep-6f,
    0x1.39999ap-6f,
    0x1.50a3d6p-6f,
    0x1.67ae16p-6f,
    0x1.7eb852p-6f,
    0x1.95c28ep-6f,
    0x1.accccep-6f,
    0x1.c3d70ep-6f,
    0x1.dae146p-6f,
    0x1.f1eb86p-6f,
    0x1.047aep-5f,
    0x1.1p-5f,
    0x1.1b851ep-5f,
    0x1.270a3ep-5f,
    0x1.328f5ep-5f,
    0x1.3e147ap-5f,
    0x1.49999ap-5f,
    0x1.551eb8p-5f,
    0x1.60a3d6p-5f,
    0x1.6c28f6p-5f,
    0x1.77ae14p-5f,
    0x1.833334p-5f,
    0x1.8eb85p-5f,
    0x1.9a3d7p-5f,
    0x1.a5c28ep-5f,
    0x1.b147aep-5f,
    0x1.bccccep-5f,
    0x1.c851eep-5f,
    0x1.d3d70ep-5f,
    0x1.df5c2ap-5f,
    0x1.eae146p-5f,
    0x1.f66666p-5f,
    0x1.00f5c4p-4f,
    0x1.06b854p-4f,
    0x1.0c7ae2p-4f,
    0x1.123d7p-4f,
    0x1.18p-4f,
    0x1.1dc29p-4f,
    0x1.23852p-4f,
    0x1.2947aep-4f,
    0x1.2f0a3ep-4f,
    0x1.34cccep-4f,
    0x1.3a8f5ep-4f,
    0x1.4051ecp-4f,
    0x1.46147cp-4f,
    0x1.4bd70ap-4f,
    0x1.51999ap-4f,
    0x1.575c2ap-4f,
    0x1.5d1eb8p-4f,
    0x1.62e148p-4f,
    0x1.68a3d6p-4f,
    0x1.6e6666p-4f,
    0x1.7428f6p-4f,
    0x1.79eb86p-4f,
    0x1.7fae16p-4f,
    0x1.8570a4p-4f,
    0x1.8b3334p-4f,
    0x1.90f5c4p-4f,
    0x1.96b852p-4f,
    0x1.a8p-4f,
    0x1.c4ccccp-4f,
    0x1.e1999ap-4f,
    0x1.fe6666p-4f,
    0x1.0d9998p-3f,
    0x1.1cp-3f,
    0x1.2a6668p-3f,
    0x1.38ccccp-3f,
    0x1.473334p-3f,
    0x1.559998p-3f,
    0x1.64p-3f,
    0x1.726668p-3f,
    0x1.80ccccp-3f,
    0x1.8f3334p-3f,
    0x1.9d9998p-3f,
    0x1.acp-3f,
    0x1.ba6668p-3f,
    0x1.c8ccccp-3f,
    0x1.d73334p-3f,
    0x1.e59998p-3f,
    0x1.f4p-3f,
    0x1.013332p-2f,
    0x1.086666p-2f,
    0x1.0f999ap-2f,
    0x1.16ccccp-2f,
    0x1.1ep-2f,
    0x1.253334p-2f,
    0x1.2c6666p-2f,
    0x1.339998p-2f,
    0x1.3accccp-2f,
    0x1.42p-2f,
    0x1.493334p-2f,
    0x1.506666p-2f,
    0x1.579998p-2f,
    0x1.5eccccp-2f,
    0x1.66p-2f,
    0x1.6d3334p-2f,
    0x1.746666p-2f,
    0x1.7b9998p-2f,
    0x1.82ccccp-2f,
    0x1.8ap-2f,
    0x1.913334p-2f,
    0x1.986666p-2f,
    0x1.9f9998p-2f,
    0x1.a6ccccp-2f,
    0x1.aep-2f,
    0x1.b53334p-2f,
    0x1.bc6666p-2f,
    0x1.c39998p-2f,
    0x1.caccccp-2f,
    0x1.d2p-2f,
    0x1.d93334p-2f,
    0x1.e06666p-2f,
    0x1.e79998p-2f,
    0x1.eeccccp-2f,
    0x1.f6p-2f,
    0x1.fd3332p-2f,
    0x1.023334p-1f,
    0x1.05ccccp-1f,
    0x1.096666p-1f,
    0x1.0dp-1f,
    0x1.109998p-1f,
    0x1.143334p-1f,
    0x1.17ccccp-1f,
    0x1.1b6668p-1f,
    0x1.1fp-1f,
    0x1.22999ap-1f,
    0x1.263334p-1f,
    0x1.29ccccp-1f,
    0x1.2d6668p-1f,
    0x1.31p-1f,
    0x1.34999ap-1f,
    0x1.383334p-1f,
    0x1.3bccccp-1f,
    0x1.3f6668p-1f,
    0x1.43p-1f,
    0x1.46999ap-1f,
    0x1.4a3334p-1f,
    0x1.4dccccp-1f,
    0x1.516668p-1f,
    0x1.55p-1f,
    0x1.58999ap-1f,
    0x1.5c3334p-1f,
    0x1.5fccccp-1f,
    0x1.636668p-1f,
    0x1.67p-1f,
    0x1.6a999ap-1f,
    0x1.6e3334p-1f,
    0x1.71ccccp-1f,
    0x1.756668p-1f,
    0x1.79p-1f,
    0x1.7c999ap-1f,
    0x1.803334p-1f,
    0x1.83ccccp-1f,
    0x1.876668p-1f,
    0x1.8bp-1f,
    0x1.8e9998p-1f,
    0x1.923334p-1f,
    0x1.95ccccp-1f,
    0x1.996668p-1f,
    0x1.9dp-1f,
    0x1.a09998p-1f,
    0x1.a43334p-1f,
    0x1.a7ccccp-1f,
    0x1.ab6668p-1f,
    0x1.afp-1f,
    0x1.b29998p-1f,
    0x1.b63334p-1f,
    0x1.b9ccccp-1f,
    0x1.bd6668p-1f,
    0x1.c1p-1f,
    0x1.c49998p-1f,
    0x1.c83334p-1f,
    0x1.cbccccp-1f,
    0x1.cf6668p-1f,
    0x1.d3p-1f,
    0x1.d69998p-1f,
    0x1.da3334p-1f,
    0x1.ddccccp-1f,
    0x1.e16668p-1f,
    0x1.e5p-1f,
    0x1.e89998p-1f,
    0x1.ec3334p-1f,
    0x1.efccccp-1f,
    0x1.f36668p-1f,
    0x1.f7p-1f,
    0x1.fa9998p-1f,
    0x1.fe3334p-1f,
    0x1p+0f,
};

const float *lt_q4_codebook(lt_dtype t) {
    return t == LT_DTYPE_FP4 ? fp4_code : nf4_code;
}
const float *lt_dyn8_map(bool is_signed) {
    return is_signed ? dyn8_signed : dyn8_unsigned;
}

// ---------------------------------------------------------------------------------------------
// 4-bit quantisation

typedef struct q4_book {
    float bound[15];  // midpoints of the sorted code values
    uint8_t code[16]; // code index of the i-th smallest value
    bool remap;       // code is not the identity (FP4)
} q4_book;

static void q4_book_init(q4_book *b, lt_dtype t) {
    const float *c = lt_q4_codebook(t);
    float sorted[16];
    for (int i = 0; i < 16; i++) {
        b->code[i] = t == LT_DTYPE_FP4 ? fp4_order[i] : (uint8_t)i;
        sorted[i] = c[b->code[i]];
    }
    for (int i = 0; i < 15; i++) b->bound[i] = (sorted[i] + sorted[i + 1]) / 2;
    b->remap = t == LT_DTYPE_FP4;
}

// Code indices of s(n): for each value the number of midpoints strictly below it
// (torch.bucketize, right=False), mapped to code indices. Loops over the bounds outside and the
// values inside, so the compiler vectorises the comparisons.
// (Full blocks take the fixed-length loop: GCC's -O2 cost model vectorises only known counts.)
static void q4_nearest(const q4_book *b, const float *s, int64_t n, uint8_t *q) {
    int32_t k[LT_Q4_BLOCK] = {0};
    if (n == LT_Q4_BLOCK) {
        for (int i = 0; i < 15; i++) {
            float bd = b->bound[i];
            for (int j = 0; j < LT_Q4_BLOCK; j++) k[j] += s[j] > bd;
        }
    } else {
        for (int i = 0; i < 15; i++)
            for (int64_t j = 0; j < n; j++) k[j] += s[j] > b->bound[i];
    }
    for (int64_t j = 0; j < n; j++) q[j] = (uint8_t)k[j];
    if (b->remap)
        for (int64_t j = 0; j < n; j++) q[j] = b->code[q[j]];
}

static inline float absmax_of(const float *x, int64_t n) {
    float a = 0.0f;
    int64_t i = 0;
    if (n >= 8) { // 8 independent lanes: vectorised selects instead of one serial chain
        float l[8] = {0};
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) {
                float v = fabsf(x[i + k]);
                l[k] = v > l[k] ? v : l[k];
            }
        for (int k = 0; k < 8; k++) a = l[k] > a ? l[k] : a;
    }
    for (; i < n; i++) {
        float v = fabsf(x[i]);
        a = v > a ? v : a;
    }
    return a;
}

static inline float clamp1(float v) {
    return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
}

void lt_q4_quantize(lt_dtype t, const float *x, int64_t n, uint8_t *codes, float *absmax) {
    LT_ASSERT((t == LT_DTYPE_NF4 || t == LT_DTYPE_FP4) && n % 2 == 0);
    q4_book book;
    q4_book_init(&book, t);
    for (int64_t e0 = 0, b = 0; e0 < n; e0 += LT_Q4_BLOCK, b++) {
        int64_t bn = n - e0 < LT_Q4_BLOCK ? n - e0 : LT_Q4_BLOCK;
        float a = absmax_of(x + e0, bn), ac = fmaxf(a, 1e-38f), inv = 1.0f / ac;
        uint8_t q[LT_Q4_BLOCK];
        float sc[LT_Q4_BLOCK];
        if (bn == LT_Q4_BLOCK) {
            absmax[b] = a;
            for (int i = 0; i < LT_Q4_BLOCK; i++) sc[i] = clamp1(x[e0 + i] * inv);
        } else { // bnb's short last block: stores the clamped absmax and divides by it
            absmax[b] = ac;
            for (int64_t i = 0; i < bn; i++) sc[i] = clamp1(x[e0 + i] / ac);
        }
        q4_nearest(&book, sc, bn, q);
        for (int64_t i = 0; i < bn; i += 2) codes[(e0 + i) / 2] = (uint8_t)(q[i] << 4 | q[i + 1]);
    }
}

void lt_q4_double_quant(const float *absmax, int64_t nb, uint8_t *qabsmax, float *absmax2,
                        float *offset) {
    double sum = 0;
    for (int64_t b = 0; b < nb; b++) sum += absmax[b];
    float off = nb > 0 ? (float)(sum / (double)nb) : 0.0f;
    float tmp[LT_DYN8_DQ_BLOCK];
    for (int64_t b0 = 0; b0 < nb; b0 += LT_DYN8_DQ_BLOCK) {
        int64_t bn = nb - b0 < LT_DYN8_DQ_BLOCK ? nb - b0 : LT_DYN8_DQ_BLOCK;
        for (int64_t i = 0; i < bn; i++) tmp[i] = absmax[b0 + i] - off;
        lt_dyn8_quantize(dyn8_signed, tmp, bn, LT_DYN8_DQ_BLOCK, qabsmax + b0,
                         absmax2 + b0 / LT_DYN8_DQ_BLOCK);
    }
    *offset = off;
}

float lt_q4_block_scale(const lt_q4_state *s, int64_t b) {
    if (s->absmax) return s->absmax[b];
    float v = dyn8_signed[s->qabsmax[b]] * s->absmax2[b / LT_DYN8_DQ_BLOCK];
    return v + s->offset;
}

// dst(n) = scaled code values of elements [e0, e0 + n) (all inside one block; scaled: table of
// codebook * scale for that block).
static void q4_decode_run(float *dst, const uint8_t *codes, int64_t e0, int64_t n,
                          const float *scaled) {
    int64_t i = 0;
    if (e0 & 1) { // starts on a low nibble
        dst[i++] = scaled[codes[e0 / 2] & 15];
    }
    const uint8_t *p = codes + (e0 + i) / 2;
    for (; i + 2 <= n; i += 2, p++) {
        dst[i] = scaled[*p >> 4];
        dst[i + 1] = scaled[*p & 15];
    }
    if (i < n) dst[i] = scaled[*p >> 4];
}

void lt_q4_dequantize(const lt_q4_state *s, const uint8_t *codes, int64_t e0, int64_t n,
                      float *dst) {
    const float *c = lt_q4_codebook(s->dtype);
    int64_t e = e0, end = e0 + n;
    while (e < end) {
        int64_t b = e / LT_Q4_BLOCK, be = (b + 1) * LT_Q4_BLOCK;
        int64_t run = (be < end ? be : end) - e;
        float sc = lt_q4_block_scale(s, b), scaled[16];
        for (int i = 0; i < 16; i++) scaled[i] = c[i] * sc;
        q4_decode_run(dst + (e - e0), codes, e, run, scaled);
        e += run;
    }
}

// ---------------------------------------------------------------------------------------------
// 8-bit blockwise dynamic quantisation

void lt_dyn8_quantize(const float *code, const float *x, int64_t n, int blocksize, uint8_t *q,
                      float *absmax) {
    LT_ASSERT(blocksize > 0);
    float bound[255];
    for (int i = 0; i < 255; i++) bound[i] = (code[i] + code[i + 1]) / 2;
    for (int64_t e0 = 0, b = 0; e0 < n; e0 += blocksize, b++) {
        int64_t bn = n - e0 < blocksize ? n - e0 : blocksize;
        float a = absmax_of(x + e0, bn), ac = fmaxf(a, 1e-38f), inv = 1.0f / ac;
        bool full = bn == blocksize; // bnb's short last block stores ac and divides by it
        absmax[b] = full ? a : ac;
        for (int64_t i = 0; i < bn; i++) {
            float s = clamp1(full ? x[e0 + i] * inv : x[e0 + i] / ac);
            // first bound >= s (torch.bucketize, right=False): binary search over 255 bounds
            int lo = 0, hi = 255;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (bound[mid] < s)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            q[e0 + i] = (uint8_t)lo;
        }
    }
}

void lt_dyn8_dequantize(const float *code, const uint8_t *q, const float *absmax, int64_t n,
                        int blocksize, float *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = code[q[i]] * absmax[i / blocksize];
}

// ---------------------------------------------------------------------------------------------
// matrix views

bool lt_mat_init_q4(lt_mat *m, int64_t rows, int64_t cols, const uint8_t *codes,
                    const lt_q4_state *s) {
    if (rows < 0 || cols <= 0 || cols % LT_Q4_BLOCK != 0 || !s ||
        (s->dtype != LT_DTYPE_NF4 && s->dtype != LT_DTYPE_FP4))
        return false;
    m->dtype = s->dtype;
    m->rows = rows;
    m->cols = cols;
    m->row_bytes = (size_t)cols / 2;
    m->data = codes;
    m->aux = s;
    return true;
}

void lt_mat_row_to_f32(const lt_mat *W, int64_t r, int64_t k0, int64_t n, float *dst) {
    if (W->dtype == LT_DTYPE_NF4 || W->dtype == LT_DTYPE_FP4) {
        LT_ASSERT(W->aux != NULL);
        lt_q4_dequantize(W->aux, W->data, r * W->cols + k0, n, dst);
        return;
    }
    const char *row = (const char *)lt_mat_row(W, r);
    lt_to_f32(W->dtype, row + lt_dtype_nbytes(W->dtype, k0), dst, n);
}
