/*
 * test_metrics.c - evaluation (src/eval) against reports computed by hand:
 *  - normalisation (strip, NFKC, case folding, whitespace, SQuAD punctuation and articles);
 *  - exact match with several gold answers, with and without normalisation;
 *  - Pearson's r (numpy.corrcoef values) and its undefined cases;
 *  - the first JSON object inside prose and code fences;
 *  - JSON-output classification: unparsed output, missing label, synonyms, a class never
 *    predicted, a class absent from gold, a fixed label set, a single-class set (no NaN, the
 *    correlation null with its reason), the error preview;
 *  - field-level exact match (strings normalised, 12.50 == 12.5, "4" != 4 unless coerced);
 *  - JSONL reading, joining by position and by id, and their errors (mismatched lengths, a
 *    duplicate id, a missing id), atomic report writing and before/after deltas.
 */
#include "eval/eval.h"
#include "test.h"

#include <unistd.h>

static void norm_case(const char *in, const char *flags, const char *want) {
    unsigned f = 0;
    lt_err err = {0};
    char *out = NULL;
    CHECK_OK(lt_norm_parse(flags, &f, &err), &err);
    CHECK_OK(lt_text_normalize(in, strlen(in), f, &out, &err), &err);
    CHECK_MSG(out && !strcmp(out, want), "normalize(\"%s\", %s) = \"%s\", want \"%s\"", in, flags,
              out ? out : "(null)", want);
    lt_free(out);
}

static void normalisation(void) {
    norm_case("  \xef\xbc\xa8\xef\xbd\x85llo   World \t", "default",
              "hello world"); // fullwidth Ｈｅ
    norm_case("The Eiffel-Tower, in Paris!", "squad", "eiffeltower in paris");
    norm_case("a cat and THE dog, an apple", "squad", "cat and dog apple");
    norm_case("  a  b  ", "strip", "a  b");
    norm_case("  a  b  ", "spaces", " a b ");
    norm_case("Stra\xc3\x9f"
              "e",
              "case", "strasse");
    norm_case("\xef\xac\x81"
              "ne",
              "nfkc", "fine"); // the fi ligature
    norm_case(" x ", "none", " x ");
    norm_case("", "default", "");
    norm_case("   ", "default", "");
    unsigned f;
    lt_err err = {0};
    char *out = NULL;
    CHECK(lt_norm_parse("strip,bogus", &f, &err) == LT_ERR_ARG && strstr(err.msg, "bogus"));
    CHECK(lt_text_normalize("a\xff", 2, 0, &out, &err) == LT_ERR_ARG && !out);
}

static void exact_match(void) {
    const char *pred[] = {"Paris", " paris ", "London", "Rome"};
    const char *g0[] = {"Paris"}, *g1[] = {"paris"}, *g2[] = {"Berlin", "london"},
               *g3[] = {"Milan"};
    const char *const *gold[] = {g0, g1, g2, g3};
    int ng[] = {1, 1, 2, 1};
    uint8_t ok[4];
    lt_em_result r;
    lt_err err = {0};
    CHECK_OK(lt_exact_match(pred, gold, ng, 4, LT_NORM_STRIP | LT_NORM_CASE, ok, &r, &err), &err);
    CHECK(r.n == 4 && r.correct == 3 && r.accuracy == 0.75 && ok[0] && ok[1] && ok[2] && !ok[3]);
    CHECK_OK(lt_exact_match(pred, gold, ng, 4, 0, ok, &r, &err), &err);
    CHECK(r.correct == 1 && ok[0] && !ok[1] && !ok[2]);
    CHECK_OK(lt_exact_match(pred, gold, ng, 0, 0, NULL, &r, &err), &err);
    CHECK(r.n == 0 && r.accuracy == 0);
}

static void pearson(void) {
    double x[] = {0.9, 0.8, 0.3, 0.6}, y[] = {1, 1, 0, 0}, r = 0;
    const char *why = NULL;
    CHECK(lt_pearson(x, y, 4, &r, &why) && fabs(r - 0.8728715609439694) < 1e-12);
    double c[] = {1, 1, 1, 1};
    CHECK(!lt_pearson(x, c, 4, &r, &why) &&
          strstr(why, "every prediction with a confidence is correct"));
    CHECK(!lt_pearson(c, y, 4, &r, &why) && strstr(why, "confidence is constant"));
    CHECK(!lt_pearson(x, y, 1, &r, &why) && strstr(why, "fewer than 2"));
}

static void first_object(void) {
    struct {
        const char *text, *want;
    } cases[] = {
        {"Sure! ```json\n{\"label\": \"spam\", \"x\": \"}{\"}\n``` done",
         "{\"label\":\"spam\",\"x\":\"}{\"}"},
        {"{bad} then {\"a\":1} and {\"b\":2}", "{\"a\":1}"},
        {"{\"a\":{\"b\":[1,{\"c\":2}]}} trailing", "{\"a\":{\"b\":[1,{\"c\":2}]}}"},
        {"no json here {", NULL},
        {"[1, 2]", NULL},
        {"{\"a\": \"unterminated}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *o = NULL;
        lt_err err = {0};
        CHECK_OK(lt_json_first_object(cases[i].text, strlen(cases[i].text), &o, NULL, NULL, &err),
                 &err);
        bool ok = o != NULL;
        char *t = ok ? cJSON_PrintUnformatted(o) : NULL;
        CHECK_MSG(cases[i].want ? ok && !strcmp(t, cases[i].want) : !ok, "case %zu: got %s", i,
                  t ? t : "none");
        cJSON_free(t);
        cJSON_Delete(o);
    }
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const cJSON *per_class(const cJSON *rep, const char *label) {
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(rep, "per_class");
    for (const cJSON *e = pc ? pc->child : NULL; e; e = e->next)
        if (!strcmp(lt_json_str(e, "label", ""), label)) return e;
    return NULL;
}

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

static void json_class(void) {
    const char *pred[] = {
        "{\"label\":\"spam\",\"confidence\":0.9,\"reason\":\"free money\"}",
        "Answer: {\"label\": \" SPAM \", \"confidence\": 0.8, \"reason\": \"win\"}",
        "{\"label\":\"ham\",\"confidence\":0.7,\"reason\":\"hi mom\"}",
        "{\"label\":\"spam\",\"confidence\":0.6,\"reason\":\"?\"}",
        "{\"label\":\"junk\",\"confidence\":0.4,\"reason\":\"sale\"}",  // synonym of spam
        "I think it is promo",                                          // unparsed
        "{\"label\":\"phish\",\"confidence\":0.5,\"reason\":\"link\"}", // absent from gold
        "{\"confidence\":0.2}",                                         // no label
    };
    const char *gold[] = {"spam", "Spam", "ham", "ham", "promo", "promo", "spam", "ham"};
    const char *ids[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    cJSON *syn = cJSON_Parse("{\"spam\": [\"junk\", \"unsolicited\"]}");
    lt_jcls_opts o;
    lt_jcls_opts_default(&o);
    o.synonyms = syn;
    cJSON *rep = NULL, *errs = NULL;
    lt_err err = {0};
    CHECK_OK(lt_eval_json_class(&o, pred, gold, ids, 8, &rep, &errs, &err), &err);
    if (!rep) goto out;
    // classes (sorted union): ham, phish, promo, spam
    // confusion rows (gold) x columns ham phish promo spam <invalid>:
    //   ham   1 0 0 1 1 | phish 0 0 0 0 0 | promo 0 0 0 1 1 | spam 0 1 0 2 0
    CHECK(num(rep, "n") == 8 && num(rep, "parsed") == 7 &&
          NEAR(num(rep, "parse_success_rate"), 0.875));
    CHECK(num(rep, "n_no_label") == 1 && num(rep, "n_unknown_label") == 0);
    CHECK(NEAR(num(rep, "accuracy"), 3.0 / 8) && NEAR(num(rep, "accuracy_on_parsed"), 3.0 / 7));
    const cJSON *ham = per_class(rep, "ham"), *phish = per_class(rep, "phish"),
                *promo = per_class(rep, "promo"), *spam = per_class(rep, "spam");
    CHECK(ham && phish && promo && spam);
    if (!ham || !phish || !promo || !spam) goto out;
    CHECK(NEAR(num(ham, "precision"), 1) && NEAR(num(ham, "recall"), 1.0 / 3) &&
          NEAR(num(ham, "f1"), 0.5));
    CHECK(num(ham, "support") == 3 && num(ham, "predicted") == 1);
    CHECK(num(phish, "precision") == 0 && num(phish, "recall") == 0 && num(phish, "support") == 0 &&
          num(phish, "predicted") == 1);
    CHECK(num(promo, "precision") == 0 && num(promo, "recall") == 0 && num(promo, "support") == 2 &&
          num(promo, "predicted") == 0);
    CHECK(NEAR(num(spam, "precision"), 0.5) && NEAR(num(spam, "recall"), 2.0 / 3) &&
          NEAR(num(spam, "f1"), 4.0 / 7) && num(spam, "predicted") == 4);
    CHECK(NEAR(num(rep, "macro_precision"), 1.5 / 4) && NEAR(num(rep, "macro_recall"), 1.0 / 4) &&
          NEAR(num(rep, "macro_f1"), (0.5 + 4.0 / 7) / 4) &&
          NEAR(num(rep, "weighted_f1"), (0.5 * 3 + 4.0 / 7 * 3) / 8));
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(rep, "confusion_matrix");
    char *cmt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cm, "matrix"));
    CHECK_MSG(cmt && !strcmp(cmt, "[[1,0,0,1,1],[0,0,0,0,0],[0,0,0,1,1],[0,1,0,2,0]]"), "matrix %s",
              cmt);
    cJSON_free(cmt);
    char *lt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cm, "labels"));
    CHECK_MSG(lt && !strcmp(lt, "[\"ham\",\"phish\",\"promo\",\"spam\",\"<invalid>\"]"),
              "labels %s", lt);
    cJSON_free(lt);
    const cJSON *und = cJSON_GetObjectItemCaseSensitive(rep, "undefined");
    CHECK(cJSON_GetArraySize(und) == 2); // recall of phish, precision of promo
    // confidence over the 7 parsed outputs with one: 0.9 .8 .7 .6 .4 .5 .2, correct 1 1 1 0 0 0 0
    CHECK(num(rep, "n_confidence") == 7 && NEAR(num(rep, "avg_confidence"), 4.1 / 7));
    CHECK(fabs(num(rep, "confidence_correctness_pearson") - 0.8316239298238947) < 1e-12);
    CHECK(num(rep, "n_reason") == 6 && NEAR(num(rep, "avg_reason_length"), 28.0 / 6));
    CHECK(num(rep, "n_errors") == 5 && cJSON_GetArraySize(errs) == 5);
    const char *kinds[] = {"wrong_label", "wrong_label", "unparsed", "wrong_label", "no_label"};
    int k = 0;
    for (const cJSON *e = errs ? errs->child : NULL; e; e = e->next, k++)
        CHECK_MSG(!strcmp(lt_json_str(e, "error", ""), kinds[k]) &&
                      num(e, "index") == (double)(3 + k),
                  "error %d: %s at %g", k, lt_json_str(e, "error", ""), num(e, "index"));
    const cJSON *e4 = cJSON_GetArrayItem(errs, 1);
    CHECK(!strcmp(lt_json_str(e4, "id", ""), "e") && !strcmp(lt_json_str(e4, "pred", ""), "spam") &&
          !strcmp(lt_json_str(e4, "gold", ""), "promo"));
    cJSON_Delete(rep), cJSON_Delete(errs);
    rep = errs = NULL;

    // a fixed label set: phish is outside it -> invalid; only the preview size changes otherwise
    const char *labels[] = {"spam", "ham", "promo"};
    o.labels = labels, o.n_labels = 3, o.n_preview = 2;
    CHECK_OK(lt_eval_json_class(&o, pred, gold, NULL, 8, &rep, &errs, &err), &err);
    if (rep) {
        CHECK(num(rep, "n_unknown_label") == 1 && cJSON_GetArraySize(errs) == 2);
        const cJSON *sp = per_class(rep, "spam");
        CHECK(sp && num(sp, "predicted") == 4 && NEAR(num(sp, "precision"), 0.5));
        CHECK(NEAR(num(rep, "macro_precision"), (0.5 + 1 + 0) / 3));
        const char *c = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(rep, "confusion_matrix"), "matrix"));
        // rows/columns in the given order spam, ham, promo, <invalid>
        CHECK_MSG(c && !strcmp(c, "[[2,0,0,1],[1,1,0,1],[1,0,0,1]]"), "fixed matrix %s", c);
        cJSON_free((void *)c);
    }
    cJSON_Delete(rep), cJSON_Delete(errs);
    rep = errs = NULL;
    // a gold label outside the fixed set is an error
    const char *gold2[] = {"spam", "other"};
    CHECK(lt_eval_json_class(&o, pred, gold2, NULL, 2, &rep, NULL, &err) == LT_ERR_ARG &&
          strstr(err.msg, "other") && !rep);

    // one class only, all correct: no NaN; the correlation is null with its reason
    const char *p1[] = {"{\"label\":\"spam\",\"confidence\":0.9}",
                        "{\"label\":\"spam\",\"confidence\":0.8}"};
    const char *g1[] = {"spam", "spam"};
    lt_jcls_opts_default(&o);
    CHECK_OK(lt_eval_json_class(&o, p1, g1, NULL, 2, &rep, &errs, &err), &err);
    if (rep) {
        char *t = cJSON_PrintUnformatted(rep);
        CHECK(t && !strstr(t, "nan") && !strstr(t, "inf"));
        cJSON_free(t);
        CHECK(num(rep, "accuracy") == 1 && num(rep, "macro_f1") == 1 &&
              cJSON_GetArraySize(errs) == 0);
        CHECK(
            cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rep, "confidence_correctness_pearson")));
        CHECK(strstr(lt_json_str(rep, "confidence_correctness_pearson_note", ""), "constant"));
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rep, "avg_reason_length")));
    }
    cJSON_Delete(rep), cJSON_Delete(errs);
    rep = errs = NULL;
    // nothing parses: rates are 0, averages null, never NaN
    const char *p2[] = {"nope", "{\"label\": 1"};
    CHECK_OK(lt_eval_json_class(&o, p2, g1, NULL, 2, &rep, NULL, &err), &err);
    if (rep) {
        CHECK(num(rep, "parse_success_rate") == 0 && num(rep, "accuracy") == 0);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rep, "accuracy_on_parsed")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rep, "avg_confidence")));
        CHECK(num(rep, "macro_f1") == 0);
    }
    // bad synonyms
    cJSON *bad = cJSON_Parse("{\"spam\": 3}");
    o.synonyms = bad;
    cJSON_Delete(rep), rep = NULL;
    CHECK(lt_eval_json_class(&o, p1, g1, NULL, 2, &rep, NULL, &err) == LT_ERR_ARG);
    cJSON_Delete(bad);
out:
    cJSON_Delete(rep);
    cJSON_Delete(errs);
    cJSON_Delete(syn);
}

static void json_fields(void) {
    const char *gold_s[] = {
        "{\"order_id\":\"AB-1\",\"quantity\":3,\"unit_price\":12.5,\"city\":\"Paris\"}",
        "{\"order_id\":\"CD-2\",\"quantity\":4,\"unit_price\":3.0,\"city\":\"Rome\"}",
        "{\"order_id\":\"XY-9\",\"quantity\":2,\"unit_price\":1,\"city\":\"Lima\"}",
        "{\"order_id\":\"EF-3\",\"quantity\":1,\"unit_price\":1.0,\"city\":\"Bergen\"}",
    };
    const char *pred[] = {
        "{\"order_id\": \"AB-1\", \"quantity\": 3, \"unit_price\": 12.50, \"city\": \"Paris\"}",
        "Here: {\"order_id\":\"CD-2\",\"quantity\":\"4\",\"unit_price\":3,\"city\":\" Rome \"}",
        "garbage",
        "{\"order_id\":\"EF-3\",\"quantity\":1,\"unit_price\":1.0,\"city\":\"Oslo\",\"extra\":1}",
    };
    cJSON *g[4];
    for (int i = 0; i < 4; i++) g[i] = cJSON_Parse(gold_s[i]);
    lt_jfields_opts o;
    lt_jfields_opts_default(&o);
    cJSON *rep = NULL, *errs = NULL;
    lt_err err = {0};
    CHECK_OK(lt_eval_json_fields(&o, pred, (const cJSON *const *)g, NULL, 4, &rep, &errs, &err),
             &err);
    if (rep) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(rep, "fields");
        CHECK(num(rep, "parsed") == 3 && NEAR(num(rep, "parse_success_rate"), 0.75));
        CHECK(NEAR(num(rep, "all_fields_exact_match"), 0.25) &&
              NEAR(num(rep, "exact_match_on_parsed"), 1.0 / 3));
        CHECK(NEAR(num(cJSON_GetObjectItemCaseSensitive(f, "order_id"), "exact_match"), 0.75));
        CHECK(NEAR(num(cJSON_GetObjectItemCaseSensitive(f, "quantity"), "exact_match"), 0.5));
        CHECK(NEAR(num(cJSON_GetObjectItemCaseSensitive(f, "unit_price"), "exact_match"), 0.75));
        CHECK(NEAR(num(cJSON_GetObjectItemCaseSensitive(f, "city"), "exact_match"), 0.5));
        CHECK(num(cJSON_GetObjectItemCaseSensitive(f, "city"), "present") == 3);
        CHECK(NEAR(num(rep, "macro_field_exact_match"), 0.625) && num(rep, "n_errors") == 3);
        CHECK(cJSON_GetArraySize(errs) == 3);
        const cJSON *e1 = cJSON_GetArrayItem(errs, 0);
        char *w = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e1, "wrong_fields"));
        CHECK_MSG(w && !strcmp(w, "[\"quantity\"]"), "wrong fields %s", w);
        cJSON_free(w);
        CHECK(!strcmp(lt_json_str(cJSON_GetArrayItem(errs, 1), "error", ""), "unparsed"));
    }
    cJSON_Delete(rep), cJSON_Delete(errs);
    rep = NULL;
    o.coerce_numbers = true;
    CHECK_OK(lt_eval_json_fields(&o, pred, (const cJSON *const *)g, NULL, 4, &rep, NULL, &err),
             &err);
    if (rep) CHECK(NEAR(num(rep, "all_fields_exact_match"), 0.5));
    cJSON_Delete(rep), rep = NULL;
    cJSON *notobj = cJSON_CreateString("x");
    const cJSON *g2[1] = {notobj};
    CHECK(lt_eval_json_fields(&o, pred, g2, NULL, 1, &rep, NULL, &err) == LT_ERR_ARG);
    cJSON_Delete(notobj);
    for (int i = 0; i < 4; i++) cJSON_Delete(g[i]);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) fputs(s, f), fclose(f);
}

static void files(void) {
    char dir[] = "/tmp/lt_metrics_XXXXXX";
    if (!mkdtemp(dir)) return;
    char pp[128], gp[128], g3[128], dup[128], rp[128], bad[128];
    snprintf(pp, sizeof pp, "%s/pred.jsonl", dir);
    snprintf(gp, sizeof gp, "%s/gold.jsonl", dir);
    snprintf(g3, sizeof g3, "%s/gold3.jsonl", dir);
    snprintf(dup, sizeof dup, "%s/dup.jsonl", dir);
    snprintf(rp, sizeof rp, "%s/report.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    write_text(pp, "{\"id\": 2, \"output\": \"b\"}\n\n{\"id\": 1, \"output\": \"a\"}\n");
    write_text(
        gp,
        "\xEF\xBB\xBF{\"id\": \"1\", \"answer\": \"a\"}\r\n{\"id\": \"2\", \"answer\": \"b\"}\n");
    write_text(g3, "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n");
    write_text(dup, "{\"id\": 1}\n{\"id\": 1}\n");
    write_text(bad, "{\"id\": 1}\n[1, 2]\n");
    lt_jsonl P = {0}, G = {0}, G3 = {0}, D = {0}, B = {0};
    lt_err err = {0};
    CHECK_OK(lt_jsonl_read(pp, &P, &err), &err);
    CHECK_OK(lt_jsonl_read(gp, &G, &err), &err);
    CHECK_OK(lt_jsonl_read(g3, &G3, &err), &err);
    CHECK_OK(lt_jsonl_read(dup, &D, &err), &err);
    CHECK(P.n == 2 && P.line[1] == 3 && G.n == 2);
    CHECK(lt_jsonl_read(bad, &B, &err) == LT_ERR_FORMAT && strstr(err.msg, ":2:"));
    int64_t map[3];
    CHECK_OK(lt_eval_join(&P, &G, NULL, map, &err), &err);
    CHECK(map[0] == 0 && map[1] == 1);
    CHECK_OK(lt_eval_join(&P, &G, "id", map, &err), &err); // 1 (string) matches 1 (number)
    CHECK(map[0] == 1 && map[1] == 0);
    CHECK(lt_eval_join(&P, &G3, NULL, map, &err) == LT_ERR_FORMAT &&
          strstr(err.msg, "2 predictions") && strstr(err.msg, "3 gold"));
    CHECK(lt_eval_join(&P, &G3, "id", map, &err) == LT_ERR_FORMAT &&
          strstr(err.msg, "\"3\" has no prediction"));
    CHECK(lt_eval_join(&D, &G, "id", map, &err) == LT_ERR_FORMAT &&
          strstr(err.msg, "also appears"));
    CHECK(lt_eval_join(&P, &G, "nokey", map, &err) == LT_ERR_FORMAT && strstr(err.msg, "nokey"));
    char *owned = NULL;
    const char *t = lt_eval_field_text(P.rec[0], "id", &owned);
    CHECK(t && !strcmp(t, "2"));
    lt_free(owned);
    const char *keys[] = {"answers", "answer"};
    CHECK(lt_eval_pick_key(G.rec[0], keys, 2) == keys[1]);
    // before/after and atomic writing
    cJSON *a = cJSON_Parse("{\"task\": \"exact-match\", \"accuracy\": 0.25, \"n\": 4}");
    cJSON *b = cJSON_Parse("{\"task\": \"exact-match\", \"accuracy\": 0.75, \"n\": 4}");
    cJSON *c = lt_report_compare(a, b);
    CHECK(c && NEAR(num(cJSON_GetObjectItemCaseSensitive(c, "delta"), "accuracy"), 0.5));
    CHECK_OK(lt_report_write(rp, c, &err), &err);
    cJSON *back = NULL;
    CHECK_OK(lt_json_parse_file(rp, &back, &err), &err);
    CHECK(back && cJSON_Compare(back, c, true));
    cJSON_Delete(back), cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c);
    lt_jsonl_deinit(&P), lt_jsonl_deinit(&G), lt_jsonl_deinit(&G3), lt_jsonl_deinit(&D);
    const char *paths[] = {pp, gp, g3, dup, rp, bad};
    for (int i = 0; i < 6; i++) unlink(paths[i]);
    rmdir(dir);
}

// Every allocation of a report fails in turn: LT_ERR_OOM each time one failed, LT_OK with the
// same report once none did; never a crash, a leak (ASan) or a silently partial report.
static void alloc_failures(void) {
    const char *pred[] = {"{\"label\":\"spam\",\"confidence\":0.9,\"reason\":\"x\"}",
                          "text {\"label\":\"junk\",\"confidence\":0.2}", "nothing",
                          "{\"label\":\"ham\",\"confidence\":0.5,\"reason\":\"yy\"}"};
    const char *gold[] = {"spam", "ham", "ham", "ham"}, *ids[] = {"1", "2", "3", "4"};
    cJSON *syn = cJSON_Parse("{\"junk\": \"spam\"}");
    cJSON *g[4];
    for (int i = 0; i < 4; i++) g[i] = cJSON_Parse("{\"label\": \"ham\", \"confidence\": 0.5}");
    lt_jcls_opts co;
    lt_jcls_opts_default(&co);
    co.synonyms = syn;
    lt_jfields_opts fo;
    lt_jfields_opts_default(&fo);
    cJSON *ref_c = NULL, *ref_f = NULL, *tmp = NULL;
    lt_err err = {0};
    CHECK_OK(lt_eval_json_class(&co, pred, gold, ids, 4, &ref_c, &tmp, &err), &err);
    cJSON_Delete(tmp), tmp = NULL;
    CHECK_OK(lt_eval_json_fields(&fo, pred, (const cJSON *const *)g, ids, 4, &ref_f, &tmp, &err),
             &err);
    cJSON_Delete(tmp), tmp = NULL;
    int bad = 0, rounds = 0;
    for (int which = 0; which < 2; which++)
        for (long k = 0; k < 100000; k++) {
            cJSON *rep = NULL, *errs = NULL;
            long before = lt_alloc_injected_failures();
            lt_alloc_fail_after(k);
            lt_status st = which == 0
                               ? lt_eval_json_class(&co, pred, gold, ids, 4, &rep, &errs, &err)
                               : lt_eval_json_fields(&fo, pred, (const cJSON *const *)g, ids, 4,
                                                     &rep, &errs, &err);
            lt_alloc_fail_after(-1);
            bool injected = lt_alloc_injected_failures() != before;
            rounds++;
            if (injected && st != LT_ERR_OOM)
                bad++, fprintf(stderr, "report %d: failure %ld gave %s\n", which, k,
                               lt_status_name(st));
            if (!injected) {
                bad += st != LT_OK || !cJSON_Compare(rep, which ? ref_f : ref_c, true);
                cJSON_Delete(rep), cJSON_Delete(errs);
                break;
            }
            cJSON_Delete(rep), cJSON_Delete(errs);
        }
    CHECK_MSG(bad == 0 && rounds > 50, "%d bad of %d allocation-failure rounds", bad, rounds);
    cJSON_Delete(ref_c), cJSON_Delete(ref_f), cJSON_Delete(syn);
    for (int i = 0; i < 4; i++) cJSON_Delete(g[i]);
}

int main(void) {
    normalisation();
    exact_match();
    pearson();
    first_object();
    json_class();
    json_fields();
    files();
    alloc_failures();
    TEST_END();
}
