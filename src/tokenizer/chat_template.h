/*
 * chat_template.h - Hugging Face chat templates (the Jinja2 `chat_template` of
 * tokenizer_config.json, or GGUF `tokenizer.chat_template`) rendered in C, byte for byte as
 * transformers' apply_chat_template(tokenize=False) renders them.
 *
 * transformers compiles the template with jinja2's ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True, extensions=[loopcontrols]), adds the globals raise_exception, strftime_now,
 * namespace and dict and its own tojson filter (json.dumps, ensure_ascii=False), and renders it
 * with messages, tools=None, documents=None, add_generation_prompt and the tokenizer's special
 * tokens (bos_token, eos_token, ...). This module does the same for the Jinja subset that real
 * chat templates use, with Python semantics where the output shows them: strings are sequences
 * of code points (length, indexing, slicing), str.strip()/trim and the `-` whitespace control
 * strip Unicode whitespace (U+3000 included), None prints as "None", lists and dicts print as
 * Python reprs, `/` gives a float, `//` and `%` floor, and / or return an operand.
 *
 * The subset:
 *   tags      {{ }}, {% %}, {# #}, whitespace control - and + on either side, trim_blocks and
 *             lstrip_blocks as jinja2 3.1 applies them;
 *   statements  if/elif/else; for (tuple targets, `if` filter, else, loop.index/index0/revindex/
 *             revindex0/first/last/length/previtem/nextitem/cycle()); break, continue; set (names,
 *             tuples, namespace attributes, {% set x %}...{% endset %} with filters); macro
 *             (positional, keyword and default arguments; closures); with; filter blocks;
 *             transformers' {% generation %};
 *   expressions  string (Python escapes), int, float, true/false/none, list, tuple, dict
 *             literals; .attr, [key], [a:b:c]; calls with keyword arguments; + - * / // % **,
 *             ~, comparisons (chained), in, not in, and, or, not, x if c else y;
 *   filters   abs capitalize count d default first float indent int items join last length
 *             list lower map reject rejectattr replace reverse select selectattr string title
 *             tojson (ensure_ascii, indent, separators, sort_keys) trim upper;
 *   tests     boolean callable defined divisibleby eq equalto even false float ge gt
 *             greaterthan in integer iterable le lessthan lower lt mapping ne none number odd
 *             sameas sequence string true undefined upper, and == != < <= > >=;
 *   methods   str: strip lstrip rstrip split rsplit splitlines startswith endswith lower upper
 *             title capitalize replace find rfind index rindex count join removeprefix
 *             removesuffix isspace; dict: items keys values get;
 *   globals   raise_exception, namespace, dict, range, strftime_now (local time).
 *
 * Known differences from jinja2 (each one a construct real templates do not use):
 *   - integers are 64-bit: results outside int64 fail with LT_ERR_UNSUPPORTED (Python has big
 *     integers);
 *   - upper()/lower()/title()/capitalize() use utf8proc's one-to-one case mappings plus the
 *     common one-to-many ones (ß -> SS, the Latin ligatures, İ -> i̇) and Greek final sigma;
 *     the rarer special casings differ, and the lower/upper tests and title() decide what is
 *     "cased" by Unicode category, which differs from Python for a few rare characters (ª, ⓐ);
 *   - jinja2 folds constant expressions at compile time, where slicing a literal that is not a
 *     sequence ({{ 5[1:] }}) gives Undefined; here it is an error, as at run time in jinja2;
 *   - the `sameas` test approximates Python's object identity (None/True/False, small ints,
 *     a string or container compared with itself);
 *   - no garbage collection inside one render: a template that rebuilds a growing string in a
 *     loop (ns.text = ns.text + ...) uses memory quadratic in the loop length and may reach the
 *     64 MiB limit on very long conversations (real templates build text only by output).
 * Everything else jinja2 offers and this module lacks fails at parse time (an unknown tag,
 * filter or test) or at render time (an unsupported method, attribute or global, printing a
 * generator or function) with LT_ERR_UNSUPPORTED naming the construct and its line:column,
 * rather than rendering something else.
 *
 * Errors: every message starts with "chat template L:C:" (line and column, in code points, of
 * the construct, counted after jinja2's newline normalisation: "\r\n" and "\r" count as "\n").
 *   LT_ERR_FORMAT       syntax error in the template (unclosed tag, unexpected token, ...) or
 *                       a template that is not valid UTF-8;
 *   LT_ERR_UNSUPPORTED  a jinja2 construct this module does not implement, or a resource limit
 *                       that a malicious template ran into (source nesting 100, evaluation
 *                       depth 1000, macro call depth 16, 4 million evaluation steps, 64 MiB of
 *                       render memory, values nested 200 deep when printed or compared);
 *   LT_ERR_ARG          raise_exception(msg) was called (the message is msg), or rendering failed
 *                       the way jinja2 would fail at render time (an undefined value used, a type
 *                       error, division by zero, ...), or bad arguments (invalid UTF-8 or NULL
 *                       role in a message);
 *   LT_ERR_OOM          allocation failed.
 * All allocation goes through lt_alloc/lt_free.
 */
#ifndef LT_CHAT_TEMPLATE_H
#define LT_CHAT_TEMPLATE_H

#include "lt/lt.h"
#include <stdbool.h>

typedef struct lt_chat_template lt_chat_template;

// One chat message. role must not be NULL; content NULL stands for Python None. Both must be
// valid UTF-8 and NUL-terminated. The template sees {"role": role, "content": content}.
typedef struct lt_chat_msg {
    const char *role;
    const char *content;
} lt_chat_msg;

// The variables besides `messages`. bos_token / eos_token NULL leave the variable undefined (as
// transformers does for a tokenizer without that token). The n_extra extra string variables
// (extra_keys[i] = extra_vals[i], e.g. "date_string" = "26 Jul 2024") are set after the others
// and override them; a NULL value means Python None. `tools` and `documents` are None unless an
// extra variable sets them.
typedef struct lt_chat_vars {
    const char *bos_token, *eos_token;
    bool add_generation_prompt;
    const char *const *extra_keys;
    const char *const *extra_vals;
    int n_extra;
} lt_chat_vars;

// Compiles src[0..len) (need not be NUL-terminated) once; render it any number of times. The
// template keeps its own copy of the text. On failure *out is untouched and err holds the
// position and the problem (LT_ERR_FORMAT, LT_ERR_UNSUPPORTED, LT_ERR_OOM).
LT_API lt_status lt_chat_template_parse(const char *src, size_t len, lt_chat_template **out,
                                        lt_err *err);
LT_API void lt_chat_template_free(lt_chat_template *t); // NULL is fine

// Renders the template for msgs[0..n_msgs) (n_msgs may be 0; msgs may then be NULL). v may be
// NULL (no bos/eos, add_generation_prompt false). On success *out is the NUL-terminated text
// (the NUL is not counted in *out_len; out_len may be NULL), allocated with lt_alloc; the caller
// lt_free()s it. On failure *out and *out_len are untouched. A compiled template is read-only:
// several threads may render it at once.
LT_API lt_status lt_chat_template_render(const lt_chat_template *t, const lt_chat_msg *msgs,
                                         int n_msgs, const lt_chat_vars *v, char **out,
                                         size_t *out_len, lt_err *err);

#endif
