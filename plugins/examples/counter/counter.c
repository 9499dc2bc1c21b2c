/* counter: an example input plugin in C, using only ferry/plugin_abi.h.
 *
 * Every `interval` it emits `count` records {"seq":N,"msg":"<prefix>-N"} in one batch,
 * N counting from 1; with `total` > 0 it stops after that many records. Polled shape:
 * interval_ns() + collect(), both on the input's thread, so it needs no lock. */
#include <ferry/plugin_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct counter {
  int64_t count;     /* records per collect */
  int64_t total;     /* stop after this many; 0: never */
  int64_t interval;  /* nanoseconds */
  int64_t next;      /* seq of the next record */
  char* prefix_json; /* the prefix, JSON-escaped, without quotes */
  char* buf;         /* one batch of NDJSON, reused */
  size_t cap;
} counter;

static const ferry_option kOptions[] = {
    {"count", FERRY_OPTION_INT, 0, "1", "records per interval (1..100000)"},
    {"total", FERRY_OPTION_INT, 0, "0", "stop after this many records; 0: never stop"},
    {"prefix", FERRY_OPTION_STRING, 0, "n", "text before -<seq> in the msg field"},
    {"interval", FERRY_OPTION_DURATION, 0, "1s", "time between batches"},
};

static void set_error(char* error, size_t size, const char* message) {
  if (error != NULL && size > 0) snprintf(error, size, "%s", message);
}

/* Escapes `s` for the inside of a JSON string: quotes, backslashes, control bytes. */
static char* json_escape(const char* s) {
  size_t n = strlen(s);
  char* out = malloc(n * 6 + 1);
  char* o = out;
  if (out == NULL) return NULL;
  for (; *s != '\0'; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
    } else if (c < 0x20) {
      o += sprintf(o, "\\u%04x", c);
    } else {
      *o++ = (char)c;
    }
  }
  *o = '\0';
  return out;
}

static void counter_destroy(void* instance) {
  counter* c = instance;
  if (c == NULL) return;
  free(c->prefix_json);
  free(c->buf);
  free(c);
}

static int counter_create(const ferry_config* config, const ferry_host_api* host, void** instance,
                          char* error, size_t error_size) {
  const char* prefix = "n";
  size_t i;
  counter* c = calloc(1, sizeof *c);
  (void)host;
  if (c == NULL) {
    set_error(error, error_size, "out of memory");
    return FERRY_ERR_INTERNAL;
  }
  c->next = 1;
  for (i = 0; i < config->value_count; ++i) {
    const ferry_config_value* v = &config->values[i];
    if (strcmp(v->key, "count") == 0) c->count = v->integer;
    if (strcmp(v->key, "total") == 0) c->total = v->integer;
    if (strcmp(v->key, "interval") == 0) c->interval = v->integer;
    if (strcmp(v->key, "prefix") == 0) prefix = v->string;
  }
  if (c->count < 1 || c->count > 100000) {
    counter_destroy(c);
    set_error(error, error_size, "count must be between 1 and 100000");
    return FERRY_ERR_INVALID;
  }
  if (c->total < 0) {
    counter_destroy(c);
    set_error(error, error_size, "total must not be negative");
    return FERRY_ERR_INVALID;
  }
  if (c->interval <= 0) {
    counter_destroy(c);
    set_error(error, error_size, "interval must be positive");
    return FERRY_ERR_INVALID;
  }
  c->prefix_json = json_escape(prefix);
  /* {"seq":<20 digits>,"msg":"<prefix>-<20 digits>"}\n */
  c->cap = (size_t)c->count * (strlen(c->prefix_json) + 72);
  c->buf = malloc(c->cap);
  if (c->prefix_json == NULL || c->buf == NULL) {
    counter_destroy(c);
    set_error(error, error_size, "out of memory");
    return FERRY_ERR_INTERNAL;
  }
  *instance = c;
  return FERRY_OK;
}

static int64_t counter_interval(void* instance) { return ((counter*)instance)->interval; }

static int counter_collect(void* instance, const ferry_emitter* emitter, char* error,
                           size_t error_size) {
  counter* c = instance;
  size_t used = 0;
  int64_t n = c->count;
  int64_t i;
  int rc;
  if (c->total > 0) {
    if (c->next > c->total) return FERRY_OK; /* done */
    if (c->next + n - 1 > c->total) n = c->total - c->next + 1;
  }
  for (i = 0; i < n; ++i) {
    long long seq = (long long)(c->next + i);
    used += (size_t)snprintf(c->buf + used, c->cap - used, "{\"seq\":%lld,\"msg\":\"%s-%lld\"}\n",
                             seq, c->prefix_json, seq);
  }
  rc = emitter->emit(emitter->ctx, c->buf, used, NULL);
  if (rc == FERRY_OK) {
    c->next += n; /* only what the host accepted counts as sent */
    return FERRY_OK;
  }
  if (rc == FERRY_ERR_CANCELLED) return FERRY_OK; /* stopping: the same records next run */
  set_error(error, error_size, "the agent is full; the batch is retried next interval");
  return FERRY_ERR_UNAVAILABLE;
}

/* Fields left out (start, stop, process, tick...) are NULL: a polled input needs none. */
static const ferry_plugin_descriptor kDescriptor = {
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ferry_plugin_descriptor),
    .kind = FERRY_PLUGIN_INPUT,
    .name = "counter",
    .summary = "example C plugin: numbered records every interval",
    .options = kOptions,
    .option_count = sizeof kOptions / sizeof kOptions[0],
    .create = counter_create,
    .destroy = counter_destroy,
    .interval_ns = counter_interval,
    .collect = counter_collect,
};

FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void) { return &kDescriptor; }
