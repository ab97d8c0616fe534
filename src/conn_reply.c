/* conn_reply.c — Redis replies as our conn_reply trees, and what an error
 * reply means.
 *
 * hiredis's reader parses; the functions here are the objects it builds, so
 * a reply is ours from the first byte (no redisReply to copy) and no hiredis
 * type reaches the connection's owner.  Pure: no I/O, no clock; the only
 * state is the oversized-array note left in the conn for conn_on_io's
 * message.
 */
#include "conn_internal.h"
#include "redis_error.h"

#include <stdlib.h>
#include <string.h>

/* hiredis builds our conn_reply tree directly: each object it asks for is
 * either a root (allocated) or an entry of its parent's element array (which
 * createArray allocated whole).  Only roots are ever passed to freeObject. */
static conn_reply *reply_slot(const redisReadTask *task)
{
    if (task->parent) {
        conn_reply *parent = task->parent->obj;
        return (conn_reply *)&parent->element[task->idx];
    }
    return calloc(1, sizeof(conn_reply));
}

static void *reply_string(const redisReadTask *task, char *str, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    conn_reply *r = reply_slot(task);
    if (!r) {
        free(copy);
        return NULL;
    }
    memcpy(copy, str, len);
    copy[len] = '\0';
    r->type = task->type == REDIS_REPLY_ERROR    ? CONN_REPLY_ERROR
              : task->type == REDIS_REPLY_STATUS ? CONN_REPLY_STATUS
                                                 : CONN_REPLY_STRING;
    r->str = copy;
    r->len = len;
    return r;
}

/* More than CONN_REPLY_ARRAY_MAX elements: refused before anything is
 * allocated (see conn_internal.h). */

static void *reply_array(const redisReadTask *task, int elements)
{
    if (elements > CONN_REPLY_ARRAY_MAX) {
        conn *c = task->privdata;
        if (c)
            c->oversized_array = elements;
        return NULL; /* the reader stops with an error; deliver_replies says why */
    }
    conn_reply *children = NULL;
    if (elements > 0) {
        children = calloc((size_t)elements, sizeof(conn_reply));
        if (!children)
            return NULL;
    }
    conn_reply *r = reply_slot(task);
    if (!r) {
        free(children);
        return NULL;
    }
    r->type = CONN_REPLY_ARRAY;
    r->elements = elements > 0 ? (size_t)elements : 0;
    r->element = children;
    return r;
}

static void *reply_integer(const redisReadTask *task, long long value)
{
    conn_reply *r = reply_slot(task);
    if (r) {
        r->type = CONN_REPLY_INTEGER;
        r->integer = value;
    }
    return r;
}

static void *reply_nil(const redisReadTask *task)
{
    conn_reply *r = reply_slot(task);
    if (r)
        r->type = CONN_REPLY_NIL;
    return r;
}

/* Frees what r owns (strings, element arrays), not r itself. */
static void reply_release(conn_reply *r)
{
    free((char *)r->str);
    if (r->type == CONN_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            reply_release((conn_reply *)&r->element[i]);
        free((conn_reply *)r->element);
    }
}

/* hiredis's freeObject, and ours for a root handed out by the reader. */
void conn_reply_free(void *obj)
{
    if (obj) {
        reply_release(obj);
        free(obj);
    }
}

static redisReplyObjectFunctions reply_functions = {
    .createString = reply_string,
    .createArray = reply_array,
    .createInteger = reply_integer,
    .createNil = reply_nil,
    .freeObject = conn_reply_free,
};

redisReader *conn_reader_new(conn *c)
{
    redisReader *reader = redisReaderCreateWithFunctions(&reply_functions);
    if (reader)
        reader->privdata = c;
    return reader;
}

static size_t first_word_len(const conn_reply *r)
{
    size_t n = 0;
    while (n < r->len && r->str[n] != ' ')
        n++;
    return n;
}

bool conn_reply_is_error(const conn_reply *r, const char *word)
{
    if (!r || r->type != CONN_REPLY_ERROR || !r->str)
        return false;
    size_t n = strlen(word);
    return first_word_len(r) == n && memcmp(r->str, word, n) == 0;
}

int conn_error_code(const conn_reply *r)
{
    return r && r->type == CONN_REPLY_ERROR ? redis_error_code(r->str) : LEASEHOLD_EREDIS;
}
