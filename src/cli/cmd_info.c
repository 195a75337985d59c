// cmd_info.c - `loratune info MODEL`: what loratune sees in a model.
#include "cli/cli.h"
#include "model/model.h"

#include <stdio.h>

int cmd_info(int argc, char **argv) {
    bool help = false;
    cli_opt opts[] = {{"help", OPT_BOOL, &help, "this help"}};
    const char *pos[1] = {NULL};
    int np = 0;
    int rc = cli_parse("info", argc, argv, 2, opts, 1, pos, 1, &np);
    if (rc) return rc;
    if (help || np != 1) {
        printf("usage: loratune info MODEL   (HF directory or llama2.c .bin)\n");
        return help ? 0 : 2;
    }
    lt_err err = {0};
    lt_model *m;
    if (lt_model_load(pos[0], &m, &err)) return cli_fail(&err);
    const lt_config *c = &m->cfg;
    printf("model:        %s\n", pos[0]);
    printf("architecture: %s\n", m->arch.model_type);
    printf("layers:       %d\nhidden:       %d\nheads:        %d (kv %d, head dim %d)\n", c->n_layer,
           c->n_embd, c->n_head, c->n_head_kv, c->head_dim);
    printf("ffn:          %d\nvocab:        %d\nmax positions: %d\nrope theta:   %g\nnorm eps:     %g\n",
           c->n_ff, c->n_vocab, c->max_pos, (double)c->rope_theta, (double)c->norm_eps);
    printf("tied head:    %s\nqkv bias:     %s\nsliding window: %d\n", m->arch.tied_head ? "yes" : "no",
           m->arch.qkv_bias ? "yes" : "no", c->sliding_window);
    printf("weights:      %s\nparameters:   %lld\n", lt_dtype_name(m->layers[0].lin[0].w.dtype),
           (long long)lt_model_n_params(m));
    lt_model_free(m);
    return 0;
}
