/*
 * test_json_constraint.c - the JSON-schema automaton of src/infer/json_constraint.c:
 *  - schema errors (nested objects, unknown keywords, empty ranges, bad "required");
 *  - hand-picked documents accepted to the end (and complete), and hand-picked prefixes rejected
 *    at the exact byte that breaks the grammar, key order, an enum, a range or a length;
 *  - property tests: random byte walks under a budget (the "model" wants garbage) always end in
 *    a complete document, and at random points every emitted prefix is completed along the
 *    shortest path to a document that parses (cJSON) and conforms (checked here independently of
 *    the automaton);
 *  - token level with a byte-level BPE vocabulary (GPT-2, or the in-repo byte-level fixture) and
 *    SentencePiece vocabularies (llama2.c tok512 and a byte-fallback Unigram): the trie scan
 *    equals a token-by-token check, and random logits constrained by the mask give 100% parsing,
 *    conforming documents after detokenisation.
 */
#include "infer/infer.h"
#include "test.h"

static const char *S1 =
    "{\"type\": \"object\", \"properties\": {"
    "\"label\": {\"enum\": [\"spam\", \"ham\", \"not spam\"]},"
    "\"confidence\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1},"
    "\"reason\": {\"type\": \"string\", \"maxLength\": 40}},"
    "\"required\": [\"label\", \"confidence\", \"reason\"], \"additionalProperties\": false}";

static const char *S2 =
    "{\"properties\": {"
    "\"a\": {\"type\": \"integer\", \"minimum\": -5, \"maximum\": 12},"
    "\"b\": {\"type\": \"boolean\"},"
    "\"c\": {\"type\": \"string\", \"minLength\": 2},"
    "\"d\": {\"const\": null},"
    "\"e\": {\"enum\": [1, 12, -3.5, \"x\"]},"
    "\"f\": {\"type\": \"number\", \"exclusiveMinimum\": -1, \"exclusiveMaximum\": 0.25},"
    "\"g\": {\"type\": \"integer\", \"minimum\": 100, \"maximum\": 100000}},"
    "\"required\": [\"b\", \"e\"]}";

static cJSON *parse(const char *s) {
    cJSON *j = NULL;
    lt_err err = {0};
    lt_json_parse(s, strlen(s), "test", &j, &err);
    return j;
}

static lt_jschema *compile(const char *s) {
    cJSON *j = parse(s);
    lt_jschema *sc = NULL;
    lt_err err = {0};
    CHECK_OK(lt_jschema_compile(j, "test schema", &sc, &err), &err);
    cJSON_Delete(j);
    return sc;
}

// ---------------------------------------------------------------------------------------------
// an independent conformance check of a document against the schema subset

static int utf8_count(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool conforms(const cJSON *schema, const char *doc, size_t len, char *why, size_t nwhy) {
    cJSON *d = NULL;
    lt_err err = {0};
    if (lt_json_parse(doc, len, "doc", &d, &err)) {
        snprintf(why, nwhy, "does not parse: %.200s", err.msg);
        return false;
    }
    bool ok = false;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    if (!cJSON_IsObject(d)) {
        snprintf(why, nwhy, "not an object");
        goto done;
    }
    int last = -1;
    for (const cJSON *kv = d->child; kv; kv = kv->next) {
        int i = 0;
        const cJSON *ps = props->child;
        while (ps && strcmp(ps->string, kv->string)) ps = ps->next, i++;
        if (!ps || i <= last) {
            snprintf(why, nwhy, "key %s unknown, repeated or out of order", kv->string);
            goto done;
        }
        last = i;
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(ps, "enum");
        const cJSON *cn = cJSON_GetObjectItemCaseSensitive(ps, "const");
        const char *type = lt_json_str(ps, "type", "");
        if (en || cn) {
            bool hit = cn && cJSON_Compare(cn, kv, true);
            for (const cJSON *v = en ? en->child : NULL; v && !hit; v = v->next)
                hit = cJSON_Compare(v, kv, true);
            if (!hit) {
                snprintf(why, nwhy, "%s: not one of the enum values", kv->string);
                goto done;
            }
        } else if (!strcmp(type, "string")) {
            int n = cJSON_IsString(kv) ? utf8_count(kv->valuestring) : -1;
            if (n < lt_json_int(ps, "minLength", 0) || n > lt_json_int(ps, "maxLength", 1 << 30)) {
                snprintf(why, nwhy, "%s: not a string of the right length", kv->string);
                goto done;
            }
        } else if (!strcmp(type, "boolean")) {
            if (!cJSON_IsBool(kv)) {
                snprintf(why, nwhy, "%s: not a boolean", kv->string);
                goto done;
            }
        } else {
            double v = kv->valuedouble;
            if (!cJSON_IsNumber(kv) || (!strcmp(type, "integer") && v != floor(v)) ||
                v < lt_json_num(ps, "minimum", -1e300) || v > lt_json_num(ps, "maximum", 1e300) ||
                v <= lt_json_num(ps, "exclusiveMinimum", -1e300) ||
                v >= lt_json_num(ps, "exclusiveMaximum", 1e300)) {
                snprintf(why, nwhy, "%s: number out of range or not an integer", kv->string);
                goto done;
            }
        }
    }
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
        if (!cJSON_GetObjectItemCaseSensitive(d, r->valuestring)) {
            snprintf(why, nwhy, "required %s missing", r->valuestring);
            goto done;
        }
    ok = true;
done:
    cJSON_Delete(d);
    return ok;
}

// ---------------------------------------------------------------------------------------------

static void schema_errors(void) {
    struct {
        const char *s;
        lt_status want;
    } cases[] = {
        {"{\"properties\": {\"a\": {\"type\": \"object\"}}}", LT_ERR_UNSUPPORTED},
        {"{\"properties\": {\"a\": {\"type\": \"array\"}}}", LT_ERR_UNSUPPORTED},
        {"{\"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"x\"}}}",
         LT_ERR_UNSUPPORTED},
        {"{\"properties\": {\"a\": {\"type\": [\"string\", \"null\"]}}}", LT_ERR_UNSUPPORTED},
        {"{\"type\": \"array\", \"items\": {}}", LT_ERR_UNSUPPORTED},
        {"{\"type\": \"object\"}", LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {\"type\": \"string\"}}, \"required\": [\"b\"]}", LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {\"type\": \"number\", \"minimum\": 2, \"maximum\": 1}}}",
         LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {\"type\": \"integer\", \"minimum\": 0.2, \"maximum\": 0.8}}}",
         LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}}}",
         LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {\"enum\": []}}}", LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {\"type\": \"strin\"}}}", LT_ERR_FORMAT},
        {"{\"properties\": {\"a\": {}}}", LT_ERR_FORMAT},
        {"[1]", LT_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *j = parse(cases[i].s);
        lt_jschema *sc = NULL;
        lt_err err = {0};
        lt_status st = lt_jschema_compile(j, "s.json", &sc, &err);
        CHECK_MSG(st == cases[i].want && !sc && strstr(err.msg, "s.json"), "%s -> %s: %s",
                  cases[i].s, lt_status_name(st), err.msg);
        cJSON_Delete(j);
    }
}

// Feeds doc; returns the offset of the first rejected byte, or -1 when all are accepted.
static long first_reject(const lt_jschema *sc, const char *doc, lt_jstate *st) {
    lt_jstate_init(sc, st);
    for (size_t i = 0; doc[i]; i++)
        if (!lt_jstate_feed(sc, st, doc + i, 1)) return (long)i;
    return -1;
}

static void documents(void) {
    lt_jschema *s1 = compile(S1), *s2 = compile(S2);
    if (!s1 || !s2) goto out;
    cJSON *j1 = parse(S1), *j2 = parse(S2);
    const char *shortest1 = "{\"label\":\"ham\",\"confidence\":0,\"reason\":\"\"}";
    CHECK(lt_jschema_min_bytes(s1) == (int)strlen(shortest1));
    CHECK(lt_jschema_min_bytes(s2) == (int)strlen("{\"b\":true,\"e\":1}"));
    const char *good1[] = {
        "{\"label\": \"spam\", \"confidence\": 0.93, \"reason\": \"free prize\"}",
        "{\"label\":\"ham\",\"confidence\":1,\"reason\":\"\"}",
        " {\n  \"label\": \"not spam\",\n  \"confidence\": 0.500000,\n  \"reason\": "
        "\"caf\\u00e9 \\\"x\\\" \\ud83d\\ude00 \xc3\xa9 \xf0\x9f\x98\x80\\n\"\n}",
        "{\"label\":\"spam\",\"confidence\":0.0,\"reason\":"
        "\"1234567890123456789012345678901234567890\"}",
    };
    for (size_t i = 0; i < sizeof good1 / sizeof *good1; i++) {
        lt_jstate st;
        long r = first_reject(s1, good1[i], &st);
        char why[256] = "";
        CHECK_MSG(r < 0 && lt_jstate_done(&st) && lt_jstate_dist(s1, &st) == 0,
                  "good1[%zu] rejected at %ld", i, r);
        CHECK_MSG(conforms(j1, good1[i], strlen(good1[i]), why, sizeof why), "good1[%zu]: %s", i,
                  why);
    }
    const char *good2[] = {
        "{\"b\":true,\"e\":12}",
        "{\"a\":-5,\"b\":false,\"c\":\"xy\",\"e\":1}",
        "{\"b\":true,\"d\":null,\"e\":\"x\",\"f\":-0.999999}",
        "{\"a\":12,\"b\":true,\"e\":-3.5,\"f\":0.249999,\"g\":100000}",
        "{\"a\":0,\"b\":true,\"e\":1,\"f\":-0,\"g\":100}",
    };
    for (size_t i = 0; i < sizeof good2 / sizeof *good2; i++) {
        lt_jstate st;
        long r = first_reject(s2, good2[i], &st);
        char why[256] = "";
        CHECK_MSG(r < 0 && lt_jstate_done(&st), "good2[%zu] rejected at %ld", i, r);
        CHECK_MSG(conforms(j2, good2[i], strlen(good2[i]), why, sizeof why), "good2[%zu]: %s", i,
                  why);
    }
    // prefixes rejected at the marked byte (the one after the '|', which is removed)
    struct {
        const lt_jschema *s;
        const char *doc;
    } bad[] = {
        {s1, "{\"|confidence\""},                                 // key order: label first
        {s1, "{\"label\": \"sp|x"},                               // not an enum value
        {s1, "{\"label\": |spam"},                                // enum strings are quoted
        {s1, "{\"label\": \"spam\", \"confidence\": 1.|5"},       // above the maximum
        {s1, "{\"label\": \"spam\", \"confidence\": 0|1"},        // leading zero
        {s1, "{\"label\": \"spam\", \"confidence\": |-"},         // below the minimum
        {s1, "{\"label\": \"spam\", \"confidence\": 1|e5"},       // no exponent
        {s1, "{\"label\": \"spam\", \"confidence\": 0.123456|7"}, // 6 fraction digits at most
        {s1, "{\"label\": \"spam\", \"confidence\": 0.|,"},       // a digit must follow the dot
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5|}"},      // reason is required
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"a\"|,"},     // no more keys
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"a\"}| "},    // nothing after
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"a|\x01"},    // raw control
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"|\xc0\x80"}, // overlong lead
                                                                                    // byte
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"\xed|\xa0\x80"}, // surrogate
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"\\ud|c00"}, // lone low half
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"\\ud83d|\""}, // no low half
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": \"\\|x"},       // bad escape
        {s1, "{\"label\": \"spam\", \"confidence\": 0.5, \"reason\": "
             "\"1234567890123456789012345678901234567890|1"}, // maxLength 40
        {s1, "|[1]"},
        {s1, "        | {"}, // 8 blanks at most
        {s2, "{\"a\":1|3"},  // integer above 12
        {s2, "{\"a\":-|6"},
        {s2, "{\"a\":1|."},               // integers have no fraction
        {s2, "{\"|e\":1"},                // b is required before e
        {s2, "{\"b\":true,\"|a\""},       // a comes before b
        {s2, "{\"b\":true,\"c\":\"x|\""}, // minLength 2
        {s2, "{\"b\":true,\"e\":|2"},
        {s2, "{\"b\":tru|x"},
        {s2, "{\"b\":true,\"e\":12|3"},
        {s2, "{\"b\":true,\"e\":1,\"f\":-|1"}, // every -1... is outside (-1, 0.25)
        {s2, "{\"b\":true,\"e\":1,\"f\":0.2|5"},
        {s2, "{\"b\":true,\"e\":1,\"g\":|0"}, // 0 can never grow into 100..100000
        {s2, "{\"b\":true,\"e\":1,\"g\":100000|0"},
        {s2, "{\"b\":true,\"e\":1,\"g\":99|}"}, // 99 is below 100
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char doc[256];
        const char *bar = strchr(bad[i].doc, '|');
        size_t at = (size_t)(bar - bad[i].doc);
        snprintf(doc, sizeof doc, "%.*s%s", (int)at, bad[i].doc, bar + 1);
        lt_jstate st;
        long r = first_reject(bad[i].s, doc, &st);
        CHECK_MSG(r == (long)at, "bad[%zu] %s: rejected at %ld, want %zu", i, doc, r, at);
    }
    cJSON_Delete(j1);
    cJSON_Delete(j2);
out:
    lt_jschema_free(s1);
    lt_jschema_free(s2);
}

// Completes st along a shortest path (the smallest byte that lowers the distance by one).
static bool complete(const lt_jschema *sc, lt_jstate st, char *buf, size_t *n, size_t cap) {
    int d = lt_jstate_dist(sc, &st);
    while (d > 0) {
        bool found = false;
        for (int b = 0; b < 256 && !found; b++) {
            lt_jstate s2 = st;
            char c = (char)b;
            if (lt_jstate_feed(sc, &s2, &c, 1) && lt_jstate_dist(sc, &s2) == d - 1) {
                st = s2, found = true;
                if (*n + 1 >= cap) return false;
                buf[(*n)++] = c;
            }
        }
        if (!found) return false;
        d--;
    }
    return lt_jstate_done(&st);
}

static void random_walks(const char *schema_text, int walks, uint64_t seed) {
    lt_jschema *sc = compile(schema_text);
    cJSON *js = parse(schema_text);
    if (!sc) return;
    lt_rng r;
    lt_rng_seed(&r, seed);
    int ok_walks = 0, ok_prefix = 0, n_prefix = 0;
    for (int w = 0; w < walks; w++) {
        lt_jstate st;
        lt_jstate_init(sc, &st);
        int budget = lt_jschema_min_bytes(sc) + (int)lt_rng_below(&r, 80);
        char doc[512];
        size_t n = 0;
        bool stuck = false;
        while (!lt_jstate_done(&st) && budget > 0) {
            unsigned char cands[256];
            int nc = 0;
            for (int b = 0; b < 256; b++) {
                lt_jstate s2 = st;
                char c = (char)b;
                if (lt_jstate_feed(sc, &s2, &c, 1) && lt_jstate_dist(sc, &s2) <= budget - 1)
                    cands[nc++] = (unsigned char)b;
            }
            if (!nc) {
                stuck = true;
                break;
            }
            // garbage with a taste for string content and digits, so values get long
            char c = (char)cands[lt_rng_below(&r, (uint64_t)nc)];
            lt_jstate_feed(sc, &st, &c, 1);
            doc[n++] = c;
            budget--;
            if (lt_rng_below(&r, 8) == 0) { // this prefix must complete into a conforming doc
                char full[1024];
                size_t fn = n;
                memcpy(full, doc, n);
                char why[256] = "";
                bool good = complete(sc, st, full, &fn, sizeof full) &&
                            conforms(js, full, fn, why, sizeof why);
                n_prefix++;
                ok_prefix += good;
                if (!good)
                    fprintf(stderr, "prefix %.*s: completion %.*s fails: %s\n", (int)n, doc,
                            (int)fn, full, why);
            }
        }
        char why[256] = "";
        bool good = !stuck && lt_jstate_done(&st) && conforms(js, doc, n, why, sizeof why);
        if (!good)
            fprintf(stderr, "walk %d: %.*s (%s%s)\n", w, (int)n, doc, stuck ? "stuck " : "", why);
        ok_walks += good;
    }
    CHECK_MSG(ok_walks == walks, "%d of %d random walks end in a conforming document", ok_walks,
              walks);
    CHECK_MSG(ok_prefix == n_prefix, "%d of %d prefixes complete", ok_prefix, n_prefix);
    cJSON_Delete(js);
    lt_jschema_free(sc);
}

// ---------------------------------------------------------------------------------------------
// token level

static void with_vocab(const char *name, lt_tokenizer *tok, const char *schema_text, int docs,
                       uint64_t seed) {
    if (!tok) return;
    lt_jschema *sc = compile(schema_text);
    cJSON *js = parse(schema_text);
    lt_jvocab *jv = NULL;
    lt_err err = {0};
    CHECK_OK(lt_jvocab_new(sc, tok, &jv, &err), &err);
    if (!jv) goto out;
    int V = lt_tokenizer_n_vocab(tok);
    float *logits = malloc(sizeof(float) * (size_t)V);
    uint8_t *allowed = malloc((size_t)V);
    int32_t ids[256];
    lt_rng r;
    lt_rng_seed(&r, seed);
    int parsed = 0, mask_same = 0, mask_checks = 0;
    double t0 = lt_time_sec();
    for (int d = 0; d < docs; d++) {
        lt_jstate st;
        lt_jstate_init(sc, &st);
        int budget = lt_jschema_min_bytes(sc) + (int)lt_rng_below(&r, 40), n = 0;
        char raw[1024];
        size_t nraw = 0;
        while (!lt_jstate_done(&st) && n < budget && n < 256) {
            int na = lt_jvocab_allowed(jv, &st, budget - n - 1, allowed, V);
            if (d < 2) { // the trie scan equals the token-by-token check
                int same = 1;
                for (int i = 0; i < V; i++)
                    same &= allowed[i] == lt_jvocab_token_ok(jv, &st, i, budget - n - 1, NULL);
                mask_same += same, mask_checks++;
            }
            if (na == 0) break;
            for (int i = 0; i < V; i++) logits[i] = allowed[i] ? 3 * lt_rng_normal(&r) : -INFINITY;
            int32_t t = d % 2 ? lt_sample_softmax(logits, V, &r) : lt_sample_argmax(logits, V);
            size_t nb = 0;
            const char *b = lt_tokenizer_token_bytes(tok, t, &nb);
            CHECK(lt_jstate_feed(sc, &st, b, nb));
            memcpy(raw + nraw, b, nb < sizeof raw - nraw ? nb : 0);
            nraw += nb < sizeof raw - nraw ? nb : 0;
            ids[n++] = t;
        }
        char *text = NULL;
        size_t tl = 0;
        char why[256] = "", why2[256] = "";
        bool good = lt_jstate_done(&st) && conforms(js, raw, nraw, why, sizeof why);
        CHECK_OK(lt_tokenizer_decode(tok, ids, (size_t)n, LT_TOK_SKIP_SPECIAL, &text, &tl, &err),
                 &err);
        good = good && text && conforms(js, text, tl, why2, sizeof why2);
        if (!good)
            fprintf(stderr, "%s doc %d (%d tokens): %.*s (%s %s)\n", name, d, n, (int)nraw, raw,
                    why, why2);
        parsed += good;
        lt_free(text);
    }
    fprintf(stderr, "%s: %d/%d constrained documents parse and conform (%.2f s)\n", name, parsed,
            docs, lt_time_sec() - t0);
    CHECK_MSG(parsed == docs, "%s: %d of %d", name, parsed, docs);
    CHECK_MSG(mask_same == mask_checks, "%s: trie scan differs from token checks", name);
    free(logits);
    free(allowed);
out:
    lt_jvocab_free(jv);
    cJSON_Delete(js);
    lt_jschema_free(sc);
}

static void vocabularies(void) {
    const char *sd = shared_data_dir();
    char path[512];
    lt_err err = {0};
    lt_tokenizer *tok = NULL;
    // byte-level BPE
    if (sd) {
        snprintf(path, sizeof path, "%s/tokenizers/gpt2-hf-tokenizer.json", sd);
        CHECK_OK(lt_tokenizer_load_hf(path, NULL, &tok, &err), &err);
        with_vocab("gpt2 byte-level BPE", tok, S1, 12, 1);
        lt_tokenizer_free(tok), tok = NULL;
    } else {
        fprintf(stderr, "SKIP gpt2 vocabulary: ../shared/data not found (the fixture below covers "
                        "byte-level BPE)\n");
    }
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_bytelevel.tokenizer.json", NULL,
                                  &tok, &err),
             &err);
    with_vocab("fixture byte-level BPE", tok, S1, 40, 2);
    with_vocab("fixture byte-level BPE, schema 2", tok, S2, 40, 3);
    lt_tokenizer_free(tok), tok = NULL;
    // SentencePiece
    if (sd) {
        snprintf(path, sizeof path, "%s/models/tok512.bin", sd);
        CHECK_OK(lt_tokenizer_load_llama2c(path, 512, &tok, &err), &err);
        with_vocab("tok512 (llama2.c SentencePiece)", tok, S1, 40, 4);
        with_vocab("tok512, schema 2", tok, S2, 40, 5);
        lt_tokenizer_free(tok), tok = NULL;
    } else {
        fprintf(stderr, "SKIP tok512: ../shared/data not found\n");
    }
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/unigram_bytefallback.tokenizer.json",
                                  NULL, &tok, &err),
             &err);
    with_vocab("fixture Unigram with byte fallback", tok, S1, 40, 6);
    lt_tokenizer_free(tok), tok = NULL;
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_metaspace.tokenizer.json", NULL,
                                  &tok, &err),
             &err);
    with_vocab("fixture SentencePiece BPE (metaspace)", tok, S1, 40, 7);
    lt_tokenizer_free(tok);
}

// Allocation failures at every point of compiling a schema and building the vocabulary trie.
static void alloc_failures(void) {
    lt_tokenizer *tok = NULL;
    lt_err err = {0};
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_bytelevel.tokenizer.json", NULL,
                                  &tok, &err),
             &err);
    cJSON *j = parse(S2);
    int bad = 0, rounds = 0;
    for (long k = 0; k < 100000 && tok; k++) {
        lt_jschema *sc = NULL;
        lt_jvocab *jv = NULL;
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(k);
        lt_status st = lt_jschema_compile(j, "s", &sc, &err);
        if (!st) st = lt_jvocab_new(sc, tok, &jv, &err);
        lt_alloc_fail_after(-1);
        bool injected = lt_alloc_injected_failures() != before;
        rounds++;
        if (injected ? st != LT_ERR_OOM : st != LT_OK) bad++;
        lt_jvocab_free(jv);
        lt_jschema_free(sc);
        if (!injected) break;
    }
    CHECK_MSG(bad == 0 && rounds > 20, "%d bad of %d allocation-failure rounds", bad, rounds);
    cJSON_Delete(j);
    lt_tokenizer_free(tok);
}

int main(void) {
    schema_errors();
    documents();
    random_walks(S1, 150, 11);
    random_walks(S2, 150, 12);
    vocabularies();
    alloc_failures();
    TEST_END();
}
