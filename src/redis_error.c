/* redis_error.c — classifying Redis's error replies and explaining them. */
#include "redis_error.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* True when text starts with word followed by a space or its end. */
static bool first_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    return strncmp(text, word, n) == 0 && (text[n] == ' ' || text[n] == '\0');
}

/* The command an "ERR unknown command 'x', with args ..." names; 0 when it
 * is not that error, 1 for eval or evalsha (the scripts), 2 for another. */
static int unknown_command(const char *text, char *name, size_t name_size)
{
    static const char prefix[] = "ERR unknown command '";
    if (strncmp(text, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *s = text + sizeof prefix - 1, *end = strchr(s, '\'');
    size_t n = end ? (size_t)(end - s) : 0;
    if (n >= name_size)
        n = name_size - 1;
    memcpy(name, s, n);
    name[n] = '\0';
    return strcasecmp(name, "eval") == 0 || strcasecmp(name, "evalsha") == 0 ? 1 : 2;
}

/* The key and type the leasehold scripts name in a WRONGTYPE of theirs
 * ("WRONGTYPE {K}:epoch holds a list", see protocol.c); false for Redis's
 * own WRONGTYPE text or an unknown type. */
static bool typed_key(const char *words, char *type, size_t type_size, char *key, size_t key_size)
{
    static const char prefix[] = "WRONGTYPE ", holds[] = " holds a ";
    const char *h = NULL;
    for (const char *p = strstr(words, holds); p; p = strstr(p + 1, holds))
        h = p; /* the last one: a key may hold the words too */
    if (!h || strncmp(words, prefix, sizeof prefix - 1) != 0 || h < words + sizeof prefix - 1)
        return false;
    const char *t = h + sizeof holds - 1;
    size_t tn = strcspn(t, " ");
    size_t kn = (size_t)(h - words) - (sizeof prefix - 1);
    if (tn == 0 || tn >= type_size || kn >= key_size || strncmp(t, "?", tn) == 0)
        return false;
    memcpy(type, t, tn);
    type[tn] = '\0';
    memcpy(key, words + sizeof prefix - 1, kn);
    key[kn] = '\0';
    return true;
}

/* The command a top-level NOPERM names ("... to run the 'evalsha' command"). */
static bool denied_command(const char *text, char *name, size_t name_size)
{
    const char *s = strstr(text, "to run the '");
    const char *end = s ? strchr(s + 12, '\'') : NULL;
    if (!end || (size_t)(end - s - 12) >= name_size || end == s + 12)
        return false;
    memcpy(name, s + 12, (size_t)(end - s - 12));
    name[end - s - 12] = '\0';
    return true;
}

int redis_error_code(const char *text)
{
    char name[32];
    if (!text)
        return LEASEHOLD_EREDIS;
    if (first_word(text, "NOPERM") || strstr(text, "The user executing the script can't"))
        return LEASEHOLD_ENOPERM;
    if (first_word(text, "WRONGTYPE"))
        return LEASEHOLD_EWRONGTYPE;
    if (first_word(text, "READONLY"))
        return LEASEHOLD_EREADONLY;
    if (first_word(text, "NOSCRIPT") || unknown_command(text, name, sizeof name) == 1)
        return LEASEHOLD_ENOSCRIPT;
    if (first_word(text, "WRONGPASS") || first_word(text, "NOAUTH") ||
        strncmp(text, "ERR invalid password", 20) == 0)
        return LEASEHOLD_EAUTH;
    return LEASEHOLD_EREDIS;
}

/* redis_error_quote, with quotes and backslashes escaped or left as they are. */
static void quote(const char *v, size_t len, size_t max_chars, bool quotes, char *out,
                  size_t out_size)
{
    size_t o = 0;
    if (out_size == 0)
        return;
    for (size_t i = 0; i < len && o + 8 < out_size; i++) {
        if (i == max_chars) {
            o += (size_t)snprintf(out + o, out_size - o, "...");
            break;
        }
        unsigned char ch = (unsigned char)v[i];
        if (ch == '\n')
            o += (size_t)snprintf(out + o, out_size - o, "\\n");
        else if (ch == '\t')
            o += (size_t)snprintf(out + o, out_size - o, "\\t");
        else if (quotes && (ch == '\\' || ch == '\''))
            o += (size_t)snprintf(out + o, out_size - o, "\\%c", ch);
        else if (ch < 0x20 || ch > 0x7e)
            o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o < out_size ? o : out_size - 1] = '\0';
}

void redis_error_quote(const char *v, size_t len, size_t max_chars, char *out, size_t out_size)
{
    quote(v, len, max_chars, true, out, out_size);
}

/* Redis's words without what we do not show: from Redis 7 a failure inside
 * a script ends in " script: <sha1>, on @user_script:N.". */
static void redis_words(const char *text, char *out, size_t out_size)
{
    const char *cut = strstr(text, " script: ");
    size_t n = cut ? (size_t)(cut - text) : strlen(text);
    quote(text, n, 160, false, out, out_size);
}

static const char * or (const char *s, const char *dflt)
{
    return s && s[0] ? s : dflt;
}

int redis_error_explain(const char *text, const redis_error_ctx *ctx, char *why, size_t why_size)
{
    static const redis_error_ctx none = {0};
    if (!ctx)
        ctx = &none;
    int code = redis_error_code(text);
    char words[200], name[32], grant[200], key[120];
    redis_words(text ? text : "error reply", words, sizeof words);
    const char *user = or (ctx->user, "default"), *addr = or (ctx->address, "Redis");
    switch (code) {
    case LEASEHOLD_ENOPERM:
        snprintf(grant, sizeof grant,
                 "ACL SETUSER %s +ping +evalsha +eval +get +set +pttl +pexpire +del +publish "
                 "+time +info +subscribe +unsubscribe",
                 user);
        if (strstr(text, "channel"))
            snprintf(why, why_size,
                     "ACL user '%s' may not use the events channel '%s': grant it with "
                     "ACL SETUSER %s &%s",
                     user, or (ctx->channel, "?"), user, or (ctx->channel, "?"));
        else if (strstr(text, " key")) /* "the keys" (7.0), "a key" (7.2) */
            snprintf(why, why_size,
                     "ACL user '%s' may not access the key or its side keys: grant it with "
                     "ACL SETUSER %s ~%s %s",
                     user, user, or (ctx->key, "?"), or (ctx->side_keys, ""));
        else if (denied_command(text, name, sizeof name) &&
                 (strcmp(name, "evalsha") == 0 || strcmp(name, "eval") == 0))
            snprintf(why, why_size,
                     "ACL user '%s' may not run '%s': grant it with ACL SETUSER %s +evalsha +eval "
                     "(leasehold runs its scripts with both)",
                     user, name, user);
        else if (denied_command(text, name, sizeof name))
            snprintf(why, why_size,
                     "ACL user '%s' may not run '%s': grant it with ACL SETUSER %s +%s", user, name,
                     user, name);
        else
            snprintf(why, why_size,
                     "ACL user '%s' may not run a command the leasehold scripts call: grant it "
                     "with %s",
                     user, grant);
        break;
    case LEASEHOLD_EWRONGTYPE:
        if (typed_key(words, name, sizeof name, key, sizeof key)) {
            snprintf(why, why_size,
                     "'%s' holds a %s, not a lease string: another program uses it (delete it, "
                     "or pick another key)",
                     key, name);
            break;
        }
        snprintf(why, why_size,
                 "the key (or its side key %s) holds a value that is not a string, so not a "
                 "lease: another program uses it (delete it, or pick another key)",
                 or (ctx->epoch_key, "{K}:epoch"));
        break;
    case LEASEHOLD_EREADONLY:
        snprintf(why, why_size, "%s is a read-only replica: point the URL at the master", addr);
        break;
    case LEASEHOLD_ENOSCRIPT:
        if (unknown_command(text, name, sizeof name))
            snprintf(why, why_size,
                     "%s does not know the command '%s' (renamed or disabled with "
                     "rename-command): leasehold runs its scripts with EVALSHA and EVAL; "
                     "enable both, or use a Redis that has them",
                     addr, name);
        else
            snprintf(why, why_size,
                     "%s will not run the leasehold scripts (%s): leasehold needs EVALSHA and "
                     "EVAL with Lua scripting",
                     addr, words);
        break;
    case LEASEHOLD_EAUTH:
        snprintf(why, why_size, "authentication refused (%s): check the URL's user and password",
                 words);
        break;
    default:
        snprintf(why, why_size, "%s%s", words, ctx->retried ? " (retrying)" : "");
        break;
    }
    return code;
}
