/*
 * file.c - whole-file reads, atomic writes (temp file + fflush + fsync + rename), directories,
 * read-only mappings, and the small shared helpers of io_impl.h (hash index, byte buffer, UTF-8).
 *
 * Atomic writes follow the usual POSIX recipe: write "<path>.tmp.<pid>", fflush, fsync, fclose,
 * rename over <path>, then fsync the directory so the rename itself survives a crash. Any failure
 * unlinks the temp file, so the final name only ever holds a complete file (old or new).
 * Not handled: two threads of one process writing the same path at once (same temp name).
 */
#include "io/io.h"
#include "io/io_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// whole files

lt_status lt_read_file(const char *path, char **data, size_t *n, lt_err *err) {
    char *buf = NULL;
    size_t len = 0, cap;
    lt_status st;
    FILE *f = fopen(path, "rb");
    if (!f) return lt_err_set(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = lt_err_set(err, LT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = lt_err_set(err, LT_ERR_IO, "%s: is a directory, expected a file", path);
        goto fail;
    }
    // st_size is a hint (0 for pipes and /proc files); the loop reads until EOF regardless.
    cap = (S_ISREG(sb.st_mode) && sb.st_size > 0) ? (size_t)sb.st_size + 1 : 4096;
    buf = lt_alloc(cap);
    if (!buf) goto oom;
    for (;;) {
        if (len + 1 >= cap) {
            size_t ncap;
            if (!lt_mul_ok(cap, 2, &ncap)) goto oom;
            char *nb = lt_realloc(buf, ncap);
            if (!nb) goto oom;
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        st = lt_err_set(err, LT_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    buf[len] = 0;
    *data = buf;
    *n = len;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory reading the file (%zu bytes so far)", path,
                    len);
fail:
    lt_free(buf);
    fclose(f);
    return st;
}

lt_status lt_write_file_atomic(const char *path, const void *data, size_t n, lt_err *err) {
    lt_afile a;
    lt_status st = lt_afile_open(&a, path, err);
    if (st) return st;
    if (n) fwrite(data, 1, n, a.f); // errors are caught by ferror in commit
    return lt_afile_commit(&a, err);
}

// ---------------------------------------------------------------------------------------------
// atomic writer

static void afile_release(lt_afile *a) {
    lt_free(a->path);
    lt_free(a->tmp);
    a->f = NULL;
    a->path = a->tmp = NULL;
}

lt_status lt_afile_open(lt_afile *a, const char *path, lt_err *err) {
    a->f = NULL;
    a->path = a->tmp = NULL;
    if (!path || !*path) return lt_err_set(err, LT_ERR_ARG, "atomic write: empty path");
    size_t n = strlen(path) + 32;
    a->path = lt_strdup(path);
    a->tmp = lt_alloc(n);
    if (!a->path || !a->tmp) {
        afile_release(a);
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory opening for writing", path);
    }
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        lt_status st = lt_err_set(err, LT_ERR_IO, "%s: cannot create: %s", a->tmp, strerror(errno));
        afile_release(a);
        return st;
    }
    return LT_OK;
}

// fsyncs the directory holding path so that a completed rename is durable. Best effort: some
// file systems refuse fsync on directories, which is not an error for us.
static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

lt_status lt_afile_commit(lt_afile *a, lt_err *err) {
    lt_status st = LT_OK;
    if (!a->f) return lt_err_set(err, LT_ERR_ARG, "atomic write: file is not open");
    int e = 0;
    if (fflush(a->f) != 0 || ferror(a->f)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(a->f)) != 0) e = errno;
    if (fclose(a->f) != 0 && !e) e = errno ? errno : EIO;
    a->f = NULL;
    if (e) {
        st = lt_err_set(err, LT_ERR_IO, "%s: write failed: %s", a->tmp, strerror(e));
        goto fail;
    }
    if (rename(a->tmp, a->path) != 0) {
        st = lt_err_set(err, LT_ERR_IO, "%s: cannot rename %s over it: %s", a->path, a->tmp,
                        strerror(errno));
        goto fail;
    }
    fsync_parent_dir(a->path);
    afile_release(a);
    return LT_OK;
fail:
    unlink(a->tmp);
    afile_release(a);
    return st;
}

void lt_afile_abort(lt_afile *a) {
    if (!a) return;
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    afile_release(a);
}

// ---------------------------------------------------------------------------------------------
// paths and directories

lt_status lt_mkdir_p(const char *path, lt_err *err) {
    if (!path || !*path) return lt_err_set(err, LT_ERR_ARG, "mkdir: empty path");
    char *p = lt_strdup(path);
    if (!p) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory in mkdir", path);
    lt_status st = LT_OK;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0; // "a/b/" -> "a/b"
    for (char *s = p + 1;; s++) {
        bool end = *s == 0;
        if (*s == '/' || end) {
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                st = lt_err_set(err, LT_ERR_IO, "%s: cannot create directory %s: %s", path, p,
                                strerror(errno));
                goto done;
            }
            struct stat sb;
            if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                st = lt_err_set(err, LT_ERR_IO, "%s: %s exists and is not a directory", path, p);
                goto done;
            }
            if (end) break;
            *s = '/';
        }
    }
done:
    lt_free(p);
    return st;
}

bool lt_file_exists(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0;
}

bool lt_path_join(char *buf, size_t n, const char *dir, const char *name) {
    int w;
    if (!dir || !*dir || name[0] == '/')
        w = snprintf(buf, n, "%s", name);
    else if (dir[strlen(dir) - 1] == '/')
        w = snprintf(buf, n, "%s%s", dir, name);
    else
        w = snprintf(buf, n, "%s/%s", dir, name);
    return w >= 0 && (size_t)w < n;
}

// ---------------------------------------------------------------------------------------------
// read-only mappings

lt_status lt_io_map_file(const char *path, lt_io_map *m, lt_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lt_err_set(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lt_status st;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = lt_err_set(err, LT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = lt_err_set(err, LT_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size == 0) {
        m->data = NULL;
        m->size = 0;
        close(fd);
        return LT_OK;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        st = lt_err_set(err, LT_ERR_IO, "%s: cannot mmap %lld bytes: %s", path,
                        (long long)sb.st_size, strerror(errno));
        goto fail;
    }
    close(fd); // the mapping keeps the file alive
    m->data = p;
    m->size = (size_t)sb.st_size;
    return LT_OK;
fail:
    close(fd);
    return st;
}

void lt_io_unmap(lt_io_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

// ---------------------------------------------------------------------------------------------
// hash index (FNV-1a, linear probing)

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

lt_status lt_io_index_init(lt_io_index *ix, size_t max_n, lt_err *err) {
    size_t cap = 16;
    while (cap <= 2 * max_n) {
        if (cap > SIZE_MAX / 4)
            return lt_err_set(err, LT_ERR_OOM, "index of %zu names too big", max_n);
        cap *= 2;
    }
    ix->slots = lt_calloc(cap, sizeof *ix->slots);
    ix->keys = lt_calloc(max_n ? max_n : 1, sizeof *ix->keys);
    if (!ix->slots || !ix->keys || max_n >= UINT32_MAX) {
        lt_free(ix->slots);
        lt_free(ix->keys);
        ix->slots = NULL;
        ix->keys = NULL;
        return lt_err_set(err, LT_ERR_OOM, "out of memory for an index of %zu names", max_n);
    }
    ix->cap = cap;
    ix->n = 0;
    return LT_OK;
}

void lt_io_index_deinit(lt_io_index *ix) {
    lt_free(ix->slots);
    lt_free(ix->keys);
    ix->slots = NULL;
    ix->keys = NULL;
    ix->cap = ix->n = 0;
}

long lt_io_index_add(lt_io_index *ix, const char *name) {
    size_t mask = ix->cap - 1, i = (size_t)fnv1a(name) & mask;
    for (; ix->slots[i]; i = (i + 1) & mask) {
        uint32_t e = ix->slots[i] - 1;
        if (strcmp(ix->keys[e], name) == 0) return (long)e;
    }
    LT_ASSERT(2 * ix->n < ix->cap);
    ix->keys[ix->n] = name;
    ix->slots[i] = (uint32_t)(++ix->n);
    return -1;
}

long lt_io_index_find(const lt_io_index *ix, const char *name) {
    if (!ix->cap) return -1;
    size_t mask = ix->cap - 1, i = (size_t)fnv1a(name) & mask;
    for (; ix->slots[i]; i = (i + 1) & mask) {
        uint32_t e = ix->slots[i] - 1;
        if (strcmp(ix->keys[e], name) == 0) return (long)e;
    }
    return -1;
}

// ---------------------------------------------------------------------------------------------
// byte buffer

void lt_io_buf_append(lt_io_buf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *d = lt_realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void lt_io_buf_puts(lt_io_buf *b, const char *s) { lt_io_buf_append(b, s, strlen(s)); }

void lt_io_buf_printf(lt_io_buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    LT_ASSERT(w >= 0 && (size_t)w < sizeof tmp); // only used for short numeric fields
    lt_io_buf_append(b, tmp, (size_t)w);
}

void lt_io_buf_json_str(lt_io_buf *b, const char *s) {
    lt_io_buf_append(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c != '"' && c != '\\' && c >= 0x20) continue;
        lt_io_buf_append(b, run, (size_t)(s - run));
        char esc[8];
        if (c == '"')
            memcpy(esc, "\\\"", 3);
        else if (c == '\\')
            memcpy(esc, "\\\\", 3);
        else if (c == '\n')
            memcpy(esc, "\\n", 3);
        else if (c == '\t')
            memcpy(esc, "\\t", 3);
        else if (c == '\r')
            memcpy(esc, "\\r", 3);
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        lt_io_buf_puts(b, esc);
        run = s + 1;
    }
    lt_io_buf_append(b, run, (size_t)(s - run));
    lt_io_buf_append(b, "\"", 1);
}

void lt_io_buf_free(lt_io_buf *b) {
    lt_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 (RFC 3629)

bool lt_io_utf8_valid(const char *str, size_t n, size_t *bad) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            goto invalid;
        if (len > n - i) goto invalid;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) goto invalid;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) goto invalid;
        i += len;
    }
    return true;
invalid:
    if (bad) *bad = i;
    return false;
}
