/*
 * chat_impl.h - private to the chat template files (chat_template.c: lexer and parser,
 * chat_render.c: values and the interpreter, chat_str.c: Unicode and Python formatting helpers).
 * Not an interface for the rest of src/.
 */
#ifndef LT_CHAT_IMPL_H
#define LT_CHAT_IMPL_H

#include "core/core.h"
#include "tokenizer/chat_template.h"

#include <stdbool.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// limits (documented in chat_template.h)

#define CT_MAX_NEST 100               // nesting of blocks, brackets and unary operators (parser)
#define CT_MAX_EVAL_DEPTH 1000        // nesting of evaluation (deep trees, macro calls)
#define CT_MAX_MACRO_DEPTH 16         // nested macro calls while rendering
#define CT_MAX_STEPS 4000000L         // evaluated nodes plus loop iterations per render
#define CT_MAX_RENDER_MEM (64u << 20) // bytes of values and output per render
#define CT_MAX_RANGE 100000           // jinja2's sandbox MAX_RANGE
#define CT_MAX_VALUE_DEPTH 200        // nesting of lists/dicts printed, compared or dumped

// ---------------------------------------------------------------------------------------------
// arena: everything of a template (its text, its AST) or of one render (values, output)

typedef struct ct_chunk ct_chunk;
typedef struct ct_arena {
    ct_chunk *head;
    size_t total, limit; // limit 0: none
    bool over_limit;     // the last failure was the limit, not the allocator
} ct_arena;

void *ct_alloc(ct_arena *a, size_t n); // 16-byte aligned; NULL on OOM or over the limit
char *ct_strndup(ct_arena *a, const char *s, size_t n);
void ct_arena_free(ct_arena *a);

// A growable byte buffer living in an arena (the old storage stays in the arena when it grows).
typedef struct ct_buf {
    char *p;
    size_t n, cap;
    ct_arena *a;
    bool failed;
} ct_buf;
bool ct_buf_put(ct_buf *b, const char *s, size_t n);
bool ct_buf_putc(ct_buf *b, char ch);
bool ct_buf_puts(ct_buf *b, const char *s);

// ---------------------------------------------------------------------------------------------
// Unicode (text is valid UTF-8 everywhere inside the module)

size_t ct_utf8_dec(const char *s, size_t n, uint32_t *cp); // bytes used; s[0..n) valid UTF-8
size_t ct_utf8_enc(uint32_t cp, char *out);                // out has room for 4 bytes
bool ct_utf8_valid(const char *s, size_t n, size_t *bad_at);
size_t ct_utf8_count(const char *s, size_t n); // code points
bool ct_py_isspace(uint32_t cp);               // Python str.isspace / re \s
// Python repr(float) into buf (at least 32 bytes); json: "NaN", "Infinity" spellings.
void ct_fmt_float(double d, bool json, char *buf);

// ---------------------------------------------------------------------------------------------
// AST

typedef enum {
    // expressions
    N_STR,
    N_INT,
    N_FLOAT,
    N_BOOL,
    N_NONE,
    N_LIST,
    N_DICT,
    N_NAME,
    N_GETATTR,
    N_GETITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_NEG,
    N_POS,
    N_NOT,
    N_BIN,
    N_CONCAT,
    N_AND,
    N_OR,
    N_COMPARE,
    N_COND,
    N_BLOCKVAL,
    // statements
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SETBLOCK,
    N_MACRO,
    N_BREAK,
    N_CONTINUE,
    N_WITH,
    N_FILTERBLOCK,
} ct_kind;

// binary and comparison operators
enum {
    OP_ADD = 1,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOTIN
};

typedef struct ct_node ct_node;
struct ct_node {
    uint8_t kind; // ct_kind
    uint8_t op;   // N_BIN: OP_*; N_LIST: 1 tuple; N_FOR/N_SET: 1 tuple target, 2 ns.attr
    uint16_t id;  // N_FILTER / N_TEST: index in the filter / test table
    uint32_t pos; // byte offset in the normalised source, for messages
    ct_node *a, *b, *c;
    ct_node **items;    // N_LIST/N_DICT keys/N_CALL+N_FILTER+N_TEST args/N_COMPARE operands/bodies
    ct_node **items2;   // N_DICT values, kwarg values, else bodies, macro defaults
    const char **names; // kwarg names, for/set/with targets, macro params
    uint8_t *ops;       // N_COMPARE operators
    int n, n2, n_names;
    const char *s; // N_STR text (n bytes in slen), N_NAME/N_GETATTR name, filter/test/macro name
    size_t slen;
    int64_t i; // N_INT, N_BOOL
    double f;  // N_FLOAT
};

struct lt_chat_template {
    ct_arena arena;
    const char *src; // normalised text (newlines "\n", one trailing newline removed)
    size_t len;
    ct_node **body;
    int n_body;
};

// filters and tests known to the parser (index = node id)
typedef enum {
    F_ABS,
    F_CAPITALIZE,
    F_COUNT,
    F_DEFAULT,
    F_D,
    F_FIRST,
    F_FLOAT,
    F_INDENT,
    F_INT,
    F_ITEMS,
    F_JOIN,
    F_LAST,
    F_LENGTH,
    F_LIST,
    F_LOWER,
    F_MAP,
    F_REJECT,
    F_REJECTATTR,
    F_REPLACE,
    F_REVERSE,
    F_SELECT,
    F_SELECTATTR,
    F_STRING,
    F_TITLE,
    F_TOJSON,
    F_TRIM,
    F_UPPER,
    F__COUNT
} ct_filter_id;
extern const char *const ct_filter_names[F__COUNT];
typedef enum {
    T_BOOLEAN,
    T_CALLABLE,
    T_DEFINED,
    T_DIVISIBLEBY,
    T_EQ,
    T_EQUALTO,
    T_EQ2,
    T_EVEN,
    T_FALSE,
    T_FLOAT,
    T_GE,
    T_GE2,
    T_GREATERTHAN,
    T_GT,
    T_GT2,
    T_IN,
    T_INTEGER,
    T_ITERABLE,
    T_LE,
    T_LE2,
    T_LESSTHAN,
    T_LOWER,
    T_LT,
    T_LT2,
    T_MAPPING,
    T_NE,
    T_NE2,
    T_NONE,
    T_NUMBER,
    T_ODD,
    T_SAMEAS,
    T_SEQUENCE,
    T_STRING,
    T_TRUE,
    T_UNDEFINED,
    T_UPPER,
    T__COUNT
} ct_test_id;
extern const char *const ct_test_names[T__COUNT];
int ct_lookup_filter(const char *name); // -1 when unknown
int ct_lookup_test(const char *name);

// line and column (1-based, column in code points) of byte offset pos of the template text
void ct_line_col(const lt_chat_template *t, uint32_t pos, int *line, int *col);

#endif
