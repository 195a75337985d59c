/*
 * test_chat_template.c - chat templates against transformers' apply_chat_template:
 *   - golden renderings (tests/fixtures/chat/<name>.json, made by tools/make_chat_fixtures.py with
 *     transformers' own render_jinja_template) of the published templates of Llama-2-chat,
 *     Llama-3/3.1-Instruct, Mistral-7B-Instruct v0.1/v0.2/v0.3, Qwen2/2.5 (ChatML), SmolLM2,
 *     Gemma and a Japanese "ユーザ：/アシスタント：" template, over conversations with system
 *     prompts, several turns, add_generation_prompt on and off, Japanese, emoji and whitespace
 *     text, plus one small template per supported Jinja construct: the output must match byte for
 *     byte, and where jinja2 raised, rendering must fail (raise_exception with its message);
 *   - unsupported constructs fail with LT_ERR_UNSUPPORTED naming the construct and line:column;
 *   - resource limits (loops, memory, nesting, recursion) end malicious templates quickly;
 *   - bad arguments, invalid UTF-8, and an allocation-failure sweep;
 *   - the template stored in the SmolLM2 GGUF (when ~/.cache/loratune has it) is the fixture's;
 *   - a tokenizer_config.json's chat_template, through lt_tokenizer_chat_template, renders and
 *     the text encodes.
 */
#include "test.h"
#include "core/core.h"
#include "io/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <dirent.h>

#define FIX "tests/fixtures/chat"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// where two texts first differ, with some context, for failure messages
static void show_diff(const char *got, size_t gn, const char *want, size_t wn) {
    size_t i = 0;
    while (i < gn && i < wn && got[i] == want[i]) i++;
    size_t from = i > 30 ? i - 30 : 0;
    fprintf(stderr, "    first difference at byte %zu (got %zu bytes, want %zu)\n", i, gn, wn);
    fprintf(stderr, "    got : \"");
    for (size_t k = from; k < gn && k < i + 40; k++)
        fprintf(stderr, got[k] == '\n' ? "\\n" : "%c", got[k]);
    fprintf(stderr, "\"\n    want: \"");
    for (size_t k = from; k < wn && k < i + 40; k++)
        fprintf(stderr, want[k] == '\n' ? "\\n" : "%c", want[k]);
    fprintf(stderr, "\"\n");
}

// ---------------------------------------------------------------------------------------------
// golden fixtures

static int n_cases, n_templates;

static void run_case(const char *file, const char *tname, const lt_chat_template *t,
                     const lt_err *perr_, const cJSON *cs) {
    const char *cname = cJSON_GetObjectItem(cs, "name")->valuestring;
    const cJSON *msgs = cJSON_GetObjectItem(cs, "messages");
    const cJSON *expected = cJSON_GetObjectItem(cs, "expected");
    const cJSON *error = cJSON_GetObjectItem(cs, "error");
    const cJSON *etype = cJSON_GetObjectItem(cs, "error_type");
    bool syntax = etype && (!strcmp(etype->valuestring, "TemplateSyntaxError") ||
                            !strcmp(etype->valuestring, "SyntaxError"));
    n_cases++;
    if (syntax) {
        CHECK_MSG(!t && perr_->code == LT_ERR_FORMAT,
                  "%s/%s/%s: jinja2 rejects it (%s) but parse "
                  "gave %s: %s",
                  file, tname, cname, error->valuestring, t ? "ok" : lt_status_name(perr_->code),
                  t ? "" : perr_->msg);
        if (!t) CHECK_MSG(!strncmp(perr_->msg, "chat template ", 14), "%s", perr_->msg);
        return;
    }
    if (!t) {
        CHECK_MSG(0, "%s/%s: parse failed: %s", file, tname, perr_->msg);
        return;
    }
    int n = cJSON_GetArraySize(msgs);
    lt_chat_msg *m = calloc((size_t)(n ? n : 1), sizeof *m);
    for (int i = 0; i < n; i++) {
        const cJSON *mi = cJSON_GetArrayItem(msgs, i),
                    *content = cJSON_GetObjectItem(mi, "content");
        m[i].role = cJSON_GetObjectItem(mi, "role")->valuestring;
        m[i].content = cJSON_IsString(content) ? content->valuestring : NULL;
    }
    const cJSON *bos = cJSON_GetObjectItem(cs, "bos_token"),
                *eos = cJSON_GetObjectItem(cs, "eos_token");
    const cJSON *extra = cJSON_GetObjectItem(cs, "extra");
    int ne = cJSON_GetArraySize(extra);
    const char **keys = calloc((size_t)ne + 1, sizeof *keys),
               **vals = calloc((size_t)ne + 1, sizeof *vals);
    int k = 0;
    for (const cJSON *e = extra->child; e; e = e->next, k++) {
        keys[k] = e->string;
        vals[k] = e->valuestring;
    }
    lt_chat_vars v = {
        .bos_token = cJSON_IsString(bos) ? bos->valuestring : NULL,
        .eos_token = cJSON_IsString(eos) ? eos->valuestring : NULL,
        .add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItem(cs, "add_generation_prompt")),
        .extra_keys = keys,
        .extra_vals = vals,
        .n_extra = ne,
    };
    char *out = NULL;
    size_t out_len = 0;
    lt_err err = {0};
    lt_status st = lt_chat_template_render(t, m, n, &v, &out, &out_len, &err);
    if (expected) {
        size_t wn = strlen(expected->valuestring);
        if (st != LT_OK) {
            CHECK_MSG(0, "%s/%s/%s: render failed: %s", file, tname, cname, err.msg);
        } else {
            bool same =
                out_len == wn && !memcmp(out, expected->valuestring, wn) && out[out_len] == 0;
            CHECK_MSG(same, "%s/%s/%s: output differs from transformers", file, tname, cname);
            if (!same) show_diff(out, out_len, expected->valuestring, wn);
        }
    } else {
        CHECK_MSG(st == LT_ERR_ARG, "%s/%s/%s: jinja2 raised %s (%s) but render gave %s %s", file,
                  tname, cname, etype->valuestring, error->valuestring, lt_status_name(st),
                  st ? err.msg : "");
        if (st) CHECK_MSG(!strncmp(err.msg, "chat template ", 14), "%s", err.msg);
        if (st && !strcmp(etype->valuestring, "TemplateError")) { // raise_exception(msg)
            char want[200];
            snprintf(want, sizeof want, "raise_exception: %.150s", error->valuestring);
            CHECK_MSG(strstr(err.msg, want) != NULL, "%s/%s/%s: message \"%s\" lacks \"%s\"", file,
                      tname, cname, err.msg, want);
        }
    }
    lt_free(out);
    free(keys);
    free(vals);
    free(m);
}

static void test_fixtures(void) {
    DIR *d = opendir(FIX);
    CHECK_MSG(d != NULL, "missing %s (run tools/make_chat_fixtures.py)", FIX);
    if (!d) return;
    char *names[64];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 64) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    CHECK_MSG(nn >= 8, "expected at least 8 fixture files, found %d", nn);
    for (int f = 0; f < nn; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIX, names[f]);
        char *text = read_text(path, NULL);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        CHECK_MSG(j != NULL, "cannot read %s", path);
        const cJSON *ts = j ? cJSON_GetObjectItem(j, "templates") : NULL;
        for (const cJSON *tj = ts ? ts->child : NULL; tj; tj = tj->next) {
            const char *tname = cJSON_GetObjectItem(tj, "name")->valuestring;
            const char *tmpl = cJSON_GetObjectItem(tj, "template")->valuestring;
            size_t tlen = strlen(tmpl);
            lt_chat_template *t = NULL;
            lt_err err = {0};
            if (lt_chat_template_parse(tmpl, tlen, &t, &err) != LT_OK) t = NULL;
            n_templates++;
            for (const cJSON *cs = cJSON_GetObjectItem(tj, "cases")->child; cs; cs = cs->next)
                run_case(names[f], tname, t, &err, cs);
            lt_chat_template_free(t);
        }
        cJSON_Delete(j);
        lt_free(text);
        free(names[f]);
    }
    fprintf(stderr, "golden: %d templates, %d cases\n", n_templates, n_cases);
}

// ---------------------------------------------------------------------------------------------
// helpers for the hand-written checks

static const lt_chat_msg conv[] = {
    {"system", "sys"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "bye"}};

// parse + render src; returns the status, fills err; *out (may be NULL) receives the text
static lt_status run(const char *src, char **out, lt_err *err) {
    lt_chat_template *t = NULL;
    lt_status st = lt_chat_template_parse(src, strlen(src), &t, err);
    if (st) return st;
    lt_chat_vars v = {.bos_token = "<s>", .eos_token = "</s>", .add_generation_prompt = true};
    char *o = NULL;
    st = lt_chat_template_render(t, conv, 4, &v, &o, NULL, err);
    lt_chat_template_free(t);
    if (out)
        *out = o;
    else
        lt_free(o);
    return st;
}

static void expect_status(const char *src, lt_status want, const char *needle) {
    lt_err err = {0};
    lt_status st = run(src, NULL, &err);
    CHECK_MSG(st == want, "\"%.60s\": want %s, got %s: %s", src, lt_status_name(want),
              lt_status_name(st), st ? err.msg : "");
    if (st && needle)
        CHECK_MSG(strstr(err.msg, needle) != NULL, "\"%.60s\": message \"%s\" lacks \"%s\"", src,
                  err.msg, needle);
}

// ---------------------------------------------------------------------------------------------
// unsupported constructs

static void test_unsupported(void) {
    static const struct {
        const char *src, *needle;
    } cases[] = {
        {"{% include 'other.jinja' %}", "1:4: unsupported tag 'include'"},
        {"{% import 'm' as m %}", "unsupported tag 'import'"},
        {"{% extends 'base' %}", "unsupported tag 'extends'"},
        {"{% block body %}{% endblock %}", "unsupported tag 'block'"},
        {"{% call m() %}x{% endcall %}", "unsupported tag 'call'"},
        {"{% raw %}{{ x }}{% endraw %}", "unsupported tag 'raw'"},
        {"{% autoescape true %}{% endautoescape %}", "unsupported tag 'autoescape'"},
        {"{% do x.append(1) %}", "unsupported tag 'do'"},
        {"{% frobnicate %}", "unknown tag 'frobnicate'"},
        {"x\n  {{ 'a b' | wordcount }}", "2:14: unsupported filter 'wordcount'"},
        {"{{ messages | dictsort }}", "unsupported filter 'dictsort'"},
        {"{{ '<b>' | safe }}", "unsupported filter 'safe'"},
        {"{{ '<b>' | e }}", "unsupported filter 'e'"},
        {"{{ x is escaped }}", "unsupported test 'escaped'"},
        {"{% for m in messages recursive %}{% endfor %}", "recursive for loops"},
        {"{{ f(*args) }}", "*args and **kwargs"},
        {"{{ '%s!' % 'x' }}", "printf-style"},
        {"{{ 'x'.format(1) }}", "string method str.format()"},
        {"{{ 'x'.zfill(3) }}", "str.zfill()"},
        {"{{ 'x'.startswith('a', 1) }}", "start/end"},
        {"{{ messages.append(1) }}", "method list.append()"},
        {"{{ {'a': 1}.update({}) }}", "method dict.update()"},
        {"{{ cycler('a', 'b') }}", "global function cycler()"},
        {"{{ range(3) }}", "printing a range object"},
        {"{{ messages | selectattr('role') }}", "printing a generator object"},
        {"{{ raise_exception }}", "printing a function"},
        {"{{ 'x' | map('center') | list }}", "map: filter 'center'"},
        {"{{ messages | map('wordcount') | list }}", "map: filter 'wordcount'"},
        {"{{ messages | selectattr('role', 'escaped') | list }}", "test 'escaped'"},
        {"{{ 99999999999999999999 }}", "larger than 64 bits"},
        {"{{ 9223372036854775807 + 1 }}", "does not fit 64 bits"},
        {"{{ '\\N{BULLET}' }}", "\\N{...}"},
        {"{{ '\\ud800' }}", "surrogate"},
        {"{{ x[1, 2] }}", "multiple subscripts"},
        {"{{ (-8) ** 0.5 }}", "complex"},
        {"{{ 5.real }}", "attribute int.real"},
        {"{{ loop.changed(1) if false else messages | first | attr('x') }}", "filter 'attr'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_status(cases[i].src, LT_ERR_UNSUPPORTED, cases[i].needle);
}

// ---------------------------------------------------------------------------------------------
// errors name the template position

static void test_error_positions(void) {
    expect_status("{{ x }}\n\n   {{ 'a' + 1 }}", LT_ERR_ARG, "chat template 3:11: ");
    expect_status("ユーザ：{{ nope.x }}", LT_ERR_ARG, "chat template 1:12: 'nope' is undefined");
    expect_status("{% if x %}\n{% for y in z %}", LT_ERR_FORMAT,
                  "chat template 2:17: unexpected end");
    expect_status("{{ messages[0]['role'] + }}", LT_ERR_FORMAT, "1:26:");
    expect_status("{% if true %}{{ raise_exception('bad role: ' ~ messages[1].role) }}{% endif %}",
                  LT_ERR_ARG, "chat template 1:17: raise_exception: bad role: user");
    expect_status("a\r\nb\r\n{{ nope() }}", LT_ERR_ARG, "chat template 3:4:");
    expect_status("{% endfor %}", LT_ERR_FORMAT, "unexpected 'endfor'");
    expect_status("{% for x in messages %}{% endif %}", LT_ERR_FORMAT,
                  "expected 'endfor' or 'else'");
    expect_status("{{ 'abc }}", LT_ERR_FORMAT, "unterminated string");
    expect_status("{% macro f(a=1, b) %}{% endmacro %}", LT_ERR_FORMAT, "non-default argument");
    expect_status("{% set ns = namespace(_x=1) %}", LT_ERR_ARG, "underscore");
    expect_status("{% set ns = namespace() %}{% set ns._x = 1 %}", LT_ERR_ARG, "underscore");
}

// ---------------------------------------------------------------------------------------------
// limits: nothing hangs, nothing grows without bound, nothing overflows the stack

static void test_limits(void) {
    double t0 = lt_time_sec();
    expect_status(
        "{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
        LT_ERR_UNSUPPORTED, "steps");
    expect_status(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        LT_ERR_UNSUPPORTED, "MiB");
    expect_status(
        "{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        LT_ERR_UNSUPPORTED, "MiB");
    expect_status("{{ 'x' * 1000000000000 }}", LT_ERR_UNSUPPORTED, "MiB");
    expect_status("{{ [1, 2] * 1000000000000 }}", LT_ERR_UNSUPPORTED, "too large");
    expect_status("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", LT_ERR_UNSUPPORTED,
                  "macro calls nested deeper");
    expect_status("{% set ns = namespace(l=[]) %}{% for i in range(300) %}{% set ns.l = [ns.l] %}"
                  "{% endfor %}{{ ns.l }}",
                  LT_ERR_UNSUPPORTED, "nested deeper");
    expect_status("{% set ns = namespace(l=[]) %}{% for i in range(300) %}{% set ns.l = [ns.l] %}"
                  "{% endfor %}{{ ns.l | tojson }}",
                  LT_ERR_UNSUPPORTED, "nested deeper");
    // deep nesting in the source
    size_t n = 20000;
    char *src = malloc(4 * n + 64), *o = src;
    o += sprintf(o, "{{ ");
    for (size_t i = 0; i < n; i++) *o++ = '(';
    *o++ = '1';
    for (size_t i = 0; i < n; i++) *o++ = ')';
    strcpy(o, " }}");
    expect_status(src, LT_ERR_UNSUPPORTED, "deeper");
    o = src;
    for (size_t i = 0; i < n / 10; i++) o += sprintf(o, "{%% if 1 %%}");
    *o = 0;
    expect_status(src, LT_ERR_UNSUPPORTED, "deeper");
    o = src + sprintf(src, "{{ not ");
    for (size_t i = 0; i < n / 4; i++) o += sprintf(o, "not ");
    strcpy(o, "1 }}");
    expect_status(src, LT_ERR_UNSUPPORTED, "deeper");
    o = src + sprintf(src, "{{ 1");
    for (size_t i = 0; i < n / 2; i++) o += sprintf(o, "+1");
    strcpy(o, " }}");
    expect_status(src, LT_ERR_UNSUPPORTED, "nested deeper");
    o = src + sprintf(src, "{{ 'x'");
    for (size_t i = 0; i < n / 4; i++) o += sprintf(o, "|trim");
    strcpy(o, " }}");
    expect_status(src, LT_ERR_UNSUPPORTED, "nested deeper");
    o = src + sprintf(src, "{{ 'x'");
    for (size_t i = 0; i < n / 4; i++) o += sprintf(o, ".strip()");
    strcpy(o, " }}");
    expect_status(src, LT_ERR_UNSUPPORTED, "nested deeper");
    free(src);
    double dt = lt_time_sec() - t0;
    CHECK_MSG(dt < 3.0, "limits took %.2f s", dt);
}

// ---------------------------------------------------------------------------------------------
// arguments and encodings

static void test_arguments(void) {
    lt_err err = {0};
    lt_chat_template *t = NULL;
    CHECK(lt_chat_template_parse("\xff{{ x }}", 8, &t, &err) == LT_ERR_FORMAT && !t);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    CHECK(lt_chat_template_parse("{{ 'a' }}", 9, NULL, &err) == LT_ERR_ARG);
    CHECK(lt_chat_template_parse(NULL, 0, &t, &err) == LT_OK && t); // the empty template
    char *out = NULL;
    size_t n = 99;
    CHECK_OK(lt_chat_template_render(t, NULL, 0, NULL, &out, &n, &err), &err);
    CHECK(out && n == 0 && out[0] == 0);
    lt_free(out);
    lt_chat_template_free(t);
    lt_chat_template_free(NULL);
    // not NUL-terminated source
    const char src[] = "{{ messages | length }}XXXX";
    CHECK_OK(lt_chat_template_parse(src, sizeof src - 5, &t, &err), &err);
    lt_chat_msg bad[] = {{"user", "ok"}, {"user", "\xc3\x28"}};
    out = (char *)"untouched";
    CHECK(lt_chat_template_render(t, bad, 2, NULL, &out, NULL, &err) == LT_ERR_ARG);
    CHECK(strstr(err.msg, "message 1") != NULL && !strcmp(out, "untouched"));
    lt_chat_msg norole[] = {{NULL, "x"}};
    CHECK(lt_chat_template_render(t, norole, 1, NULL, &out, NULL, &err) == LT_ERR_ARG);
    CHECK(lt_chat_template_render(t, NULL, 1, NULL, &out, NULL, &err) == LT_ERR_ARG);
    CHECK(lt_chat_template_render(t, bad, -1, NULL, &out, NULL, &err) == LT_ERR_ARG);
    CHECK(lt_chat_template_render(NULL, bad, 1, NULL, &out, NULL, &err) == LT_ERR_ARG);
    CHECK(lt_chat_template_render(t, bad, 1, NULL, NULL, NULL, &err) == LT_ERR_ARG);
    CHECK(lt_chat_template_render(t, bad, 1, NULL, &out, NULL, NULL) == LT_OK); // err NULL is fine
    CHECK(!strcmp(out, "1"));
    lt_free(out);
    lt_chat_template_free(t);
    // extra variables override, NULL values are None
    const char *keys[] = {"bos_token", "flag"}, *vals[] = {"[BOS]", NULL};
    lt_chat_vars v = {.bos_token = "<s>", .extra_keys = keys, .extra_vals = vals, .n_extra = 2};
    const char *vsrc = "{{ bos_token }}{{ flag }}{{ flag is none }}";
    CHECK_OK(lt_chat_template_parse(vsrc, strlen(vsrc), &t, &err), &err);
    CHECK_OK(lt_chat_template_render(t, NULL, 0, &v, &out, &n, &err), &err);
    CHECK_MSG(out && !strcmp(out, "[BOS]NoneTrue"), "got %s", out ? out : "(null)");
    lt_free(out);
    lt_chat_template_free(t);
    // the same compiled template renders different conversations
    const char *rsrc = "{% for m in messages %}{{ m.role[0] }}{% endfor %}";
    CHECK_OK(lt_chat_template_parse(rsrc, strlen(rsrc), &t, &err), &err);
    for (int k = 1; k <= 4; k++) {
        CHECK_OK(lt_chat_template_render(t, conv, k, NULL, &out, &n, &err), &err);
        CHECK(n == (size_t)k && out[0] == 's');
        lt_free(out);
    }
    lt_chat_template_free(t);
}

// ---------------------------------------------------------------------------------------------
// allocation failures: every failure is reported, nothing leaks (ASan), no crash

static void test_alloc_failures(void) {
    char *text = read_text(FIX "/llama3.json", NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *tj = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "templates"), 1) : NULL;
    const char *tmpl = tj ? cJSON_GetObjectItem(tj, "template")->valuestring : NULL;
    CHECK(tmpl != NULL);
    if (!tmpl) goto done;
    int ok_at = -1, bad = 0;
    for (int k = 0; k < 2000 && ok_at < 0; k++) {
        lt_chat_template *t = NULL;
        lt_err err = {0};
        char *out = NULL;
        lt_alloc_fail_after(k);
        lt_status st = lt_chat_template_parse(tmpl, strlen(tmpl), &t, &err);
        lt_chat_vars v = {.bos_token = "<s>", .add_generation_prompt = true};
        if (!st) st = lt_chat_template_render(t, conv, 4, &v, &out, NULL, &err);
        lt_alloc_fail_after(-1);
        if (st == LT_OK)
            ok_at = k;
        else if (st != LT_ERR_OOM)
            bad++;
        lt_free(out);
        lt_chat_template_free(t);
    }
    CHECK_MSG(ok_at > 0 && bad == 0, "alloc sweep: success after %d failures, %d wrong statuses",
              ok_at, bad);
done:
    cJSON_Delete(j);
    lt_free(text);
}

// ---------------------------------------------------------------------------------------------
// the SmolLM2 GGUF carries the template of the smollm2 fixture

static void test_gguf_template(void) {
    const char *home = getenv("HOME");
    char path[512];
    snprintf(path, sizeof path, "%s/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf",
             home ? home : "");
    struct stat sb;
    if (!home || stat(path, &sb) != 0) {
        fprintf(stderr, "SKIP gguf template: %s not found\n", path);
        return;
    }
    lt_gguf *g = NULL;
    lt_err err = {0};
    CHECK_OK(lt_gguf_open(path, &g, &err), &err);
    if (!g) return;
    const char *tmpl = NULL;
    size_t len = 0;
    CHECK_OK(lt_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &len, &err), &err);
    char *text = read_text(FIX "/smollm2.json", NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *tj = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "templates"), 0) : NULL;
    const char *want = tj ? cJSON_GetObjectItem(tj, "template")->valuestring : NULL;
    CHECK(tmpl && want && len == strlen(want) && !memcmp(tmpl, want, len));
    lt_chat_template *t = NULL;
    if (tmpl) CHECK_OK(lt_chat_template_parse(tmpl, len, &t, &err), &err);
    char *out = NULL;
    lt_chat_msg m[] = {{"user", "What is 2+2?"}};
    lt_chat_vars v = {.add_generation_prompt = true};
    if (t) CHECK_OK(lt_chat_template_render(t, m, 1, &v, &out, NULL, &err), &err);
    CHECK(out && !strcmp(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                              "trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?"
                              "<|im_end|>\n<|im_start|>assistant\n"));
    lt_free(out);
    lt_chat_template_free(t);
    cJSON_Delete(j);
    lt_free(text);
    lt_gguf_close(g);
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json -> lt_tokenizer_chat_template -> render -> encode

static void test_tokenizer_config(void) {
    lt_tokenizer *tok = NULL;
    lt_err err = {0};
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_llama3.tokenizer.json",
                                  "tests/fixtures/tokenizers/bpe_llama3.tokenizer_config.json",
                                  &tok, &err),
             &err);
    if (!tok) return;
    const char *tmpl = lt_tokenizer_chat_template(tok);
    CHECK(tmpl && !strcmp(tmpl, "{% for m in messages %}{{ m['content'] }}{% endfor %}"));
    lt_chat_template *t = NULL;
    if (tmpl) CHECK_OK(lt_chat_template_parse(tmpl, strlen(tmpl), &t, &err), &err);
    const char *bos = lt_tokenizer_id_to_token(tok, lt_tokenizer_bos(tok));
    const char *eos = lt_tokenizer_id_to_token(tok, lt_tokenizer_eos(tok));
    CHECK(bos && !strcmp(bos, "<|begin_of_text|>") && eos && !strcmp(eos, "<|eot_id|>"));
    lt_chat_vars v = {.bos_token = bos, .eos_token = eos};
    char *out = NULL;
    size_t n = 0;
    if (t) CHECK_OK(lt_chat_template_render(t, conv, 4, &v, &out, &n, &err), &err);
    CHECK(out && !strcmp(out, "syshihellobye"));
    lt_ids ids = {0};
    if (out) CHECK_OK(lt_tokenizer_encode(tok, out, n, 0, &ids, &err), &err);
    CHECK(ids.n > 0);
    lt_ids_deinit(&ids);
    lt_free(out);
    lt_chat_template_free(t);
    lt_tokenizer_free(tok);
}

int main(void) {
    double t0 = lt_time_sec();
    test_fixtures();
    test_unsupported();
    test_error_positions();
    test_limits();
    test_arguments();
    test_alloc_failures();
    test_gguf_template();
    test_tokenizer_config();
    fprintf(stderr, "test_chat_template: %.2f s\n", lt_time_sec() - t0);
    TEST_END();
}
