/* Plugin libraries for the loader's tests (tests/core/plugin_loader_test.cpp), one per
 * variant, selected by a compile definition (tests/CMakeLists.txt):
 *   FERRY_TEST_SERVICE        input "test_service": service shape, emits from its own thread
 *   FERRY_TEST_TICK           processor "test_tick": filters, refuses, ticks
 *   FERRY_TEST_WRONG_VERSION  a valid input "test_wrong" claiming ABI version 2
 *   FERRY_TEST_NO_ENTRY       exports something, but not the entry symbol
 *   FERRY_TEST_BAD_DEFAULT    input "test_bad_default" whose int option defaults to "ten" */
#include <ferry/plugin_abi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(FERRY_TEST_SERVICE)

/* Emits `batches` batches from a thread of its own, each one good record, one line that
 * is not JSON and one count_dropped("test_reason"); then idles until stop(). */
typedef struct service {
  const ferry_host_api* host;
  const ferry_emitter* emitter;
  int64_t batches;
  pthread_t thread;
  int running;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
} service;

static const ferry_option kOptions[] = {
    {"batches", FERRY_OPTION_INT, 0, "3", "batches to emit"},
};

static int create(const ferry_config* config, const ferry_host_api* host, void** instance,
                  char* error, size_t error_size) {
  service* s = calloc(1, sizeof *s);
  size_t i;
  if (s == NULL) return FERRY_ERR_INTERNAL;
  s->host = host;
  for (i = 0; i < config->value_count; ++i) {
    if (strcmp(config->values[i].key, "batches") == 0) s->batches = config->values[i].integer;
  }
  if (s->batches < 0) {
    free(s);
    snprintf(error, error_size, "batches must not be negative");
    return FERRY_ERR_INVALID;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  *instance = s;
  return FERRY_OK;
}

static void* serve(void* arg) {
  service* s = arg;
  int64_t i;
  char buf[128];
  for (i = 0; i < s->batches; ++i) {
    int n = snprintf(buf, sizeof buf, "{\"i\":%lld}\nnot json\n", (long long)i);
    s->emitter->emit(s->emitter->ctx, buf, (size_t)n, i % 2 == 0 ? NULL : "odd");
    s->host->count_dropped(s->host->ctx, "test_reason", 1);
  }
  pthread_mutex_lock(&s->mu);
  while (!s->stop) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int start(void* instance, const ferry_emitter* emitter, char* error, size_t error_size) {
  service* s = instance;
  s->emitter = emitter;
  if (pthread_create(&s->thread, NULL, serve, s) != 0) {
    snprintf(error, error_size, "cannot start a thread");
    return FERRY_ERR_INTERNAL;
  }
  s->running = 1;
  s->host->log(s->host->ctx, FERRY_LOG_INFO, "test_service serving");
  return FERRY_OK;
}

static void stop(void* instance) {
  service* s = instance;
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (s->running) pthread_join(s->thread, NULL);
  s->running = 0;
}

static void destroy(void* instance) {
  service* s = instance;
  stop(s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

static const ferry_plugin_descriptor kDescriptor = {
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ferry_plugin_descriptor),
    .kind = FERRY_PLUGIN_INPUT,
    .name = "test_service",
    .summary = "test: service input emitting from its own thread",
    .options = kOptions,
    .option_count = 1,
    .create = create,
    .destroy = destroy,
    .start = start,
    .stop = stop,
};

FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void) { return &kDescriptor; }

#elif defined(FERRY_TEST_TICK)

/* process(): a record holding "drop" is filtered, one holding "refuse" is refused
 * (count_dropped "test_refused"), one holding "garbage" is replaced by a line that is not
 * JSON; the rest pass. tick(): emits {"ticks":N,"final":F} on stream "ticks". */
typedef struct ticker {
  const ferry_host_api* host;
  int64_t every;
  int64_t ticks;
  char* out;
} ticker;

static const ferry_option kOptions[] = {
    {"every", FERRY_OPTION_DURATION, 0, "1s", "tick interval"},
    {"labels", FERRY_OPTION_STRING_LIST, 0, "[a, b]", "unused; a list for the config test"},
};

static int create(const ferry_config* config, const ferry_host_api* host, void** instance,
                  char* error, size_t error_size) {
  ticker* t = calloc(1, sizeof *t);
  size_t i;
  (void)error;
  (void)error_size;
  if (t == NULL) return FERRY_ERR_INTERNAL;
  t->host = host;
  for (i = 0; i < config->value_count; ++i) {
    const ferry_config_value* v = &config->values[i];
    char line[128];
    if (strcmp(v->key, "every") == 0) t->every = v->integer;
    if (strcmp(v->key, "labels") == 0 && v->list_size == 2) {
      snprintf(line, sizeof line, "labels %s+%s", v->list[0], v->list[1]);
      host->log(host->ctx, FERRY_LOG_INFO, line);
    }
  }
  host->log(host->ctx, FERRY_LOG_INFO, config->json); /* the JSON form, for the test to read */
  *instance = t;
  return FERRY_OK;
}

static void destroy(void* instance) {
  ticker* t = instance;
  free(t->out);
  free(t);
}

static int process(void* instance, const char* stream, const char* records, size_t size,
                   const ferry_process_out* out, char* error, size_t error_size) {
  ticker* t = instance;
  size_t used = 0;
  const char* p = records;
  const char* end = records + size;
  if (strcmp(stream, "fail") == 0) {
    snprintf(error, error_size, "stream fail is refused");
    return FERRY_ERR_INVALID;
  }
  free(t->out);
  t->out = malloc(size + 16 * (size / 2 + 1));
  if (t->out == NULL) return FERRY_ERR_INTERNAL;
  while (p < end) {
    const char* nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)len, p);
    if (strstr(line, "drop") != NULL) {
      out->filtered(out->ctx, 1);
    } else if (strstr(line, "refuse") != NULL) {
      t->host->count_dropped(t->host->ctx, "test_refused", 1);
    } else if (strstr(line, "garbage") != NULL) {
      memcpy(t->out + used, "garbage\n", 8);
      used += 8;
    } else {
      memcpy(t->out + used, p, len);
      used += len;
      t->out[used++] = '\n';
    }
    p += len + 1;
  }
  out->append(out->ctx, t->out, used);
  return FERRY_OK;
}

static int64_t tick_interval(void* instance) { return ((ticker*)instance)->every; }

static int tick(void* instance, int final, const ferry_tick_out* out, char* error,
                size_t error_size) {
  ticker* t = instance;
  char buf[64];
  int n;
  (void)error;
  (void)error_size;
  ++t->ticks;
  n = snprintf(buf, sizeof buf, "{\"ticks\":%lld,\"final\":%s}\n", (long long)t->ticks,
               final ? "true" : "false");
  out->emit(out->ctx, "ticks", buf, (size_t)n);
  return FERRY_OK;
}

static const ferry_plugin_descriptor kDescriptor = {
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ferry_plugin_descriptor),
    .kind = FERRY_PLUGIN_PROCESSOR,
    .name = "test_tick",
    .summary = "test: processor that filters, refuses and ticks",
    .options = kOptions,
    .option_count = 2,
    .create = create,
    .destroy = destroy,
    .process = process,
    .tick_interval_ns = tick_interval,
    .tick = tick,
};

FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void) { return &kDescriptor; }

#elif defined(FERRY_TEST_WRONG_VERSION) || defined(FERRY_TEST_BAD_DEFAULT)

static int create(const ferry_config* config, const ferry_host_api* host, void** instance,
                  char* error, size_t error_size) {
  (void)config;
  (void)host;
  (void)error;
  (void)error_size;
  *instance = malloc(1);
  return *instance != NULL ? FERRY_OK : FERRY_ERR_INTERNAL;
}
static void destroy(void* instance) { free(instance); }
static int64_t interval(void* instance) {
  (void)instance;
  return 1000000000;
}
static int collect(void* instance, const ferry_emitter* emitter, char* error, size_t error_size) {
  (void)instance;
  (void)error;
  (void)error_size;
  return emitter->emit(emitter->ctx, "{}\n", 3, NULL);
}

static const ferry_option kOptions[] = {
    {"limit", FERRY_OPTION_INT, 0, "ten", "an int whose default is not one"},
};
#if defined(FERRY_TEST_WRONG_VERSION)
/* What a library built against a later header would say; otherwise valid. */
#define TEST_VERSION 2
#define TEST_NAME "test_wrong"
#define TEST_OPTION_COUNT 0
#else
#define TEST_VERSION FERRY_PLUGIN_ABI_VERSION
#define TEST_NAME "test_bad_default"
#define TEST_OPTION_COUNT 1
#endif
static const ferry_plugin_descriptor kDescriptor = {
    .abi_version = TEST_VERSION,
    .struct_size = sizeof(ferry_plugin_descriptor),
    .kind = FERRY_PLUGIN_INPUT,
    .name = TEST_NAME,
    .summary = "test",
    .options = kOptions,
    .option_count = TEST_OPTION_COUNT,
    .create = create,
    .destroy = destroy,
    .interval_ns = interval,
    .collect = collect,
};

FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void) { return &kDescriptor; }

#elif defined(FERRY_TEST_NO_ENTRY)

FERRY_PLUGIN_EXPORT int ferry_plugin_something_else(void);
FERRY_PLUGIN_EXPORT int ferry_plugin_something_else(void) { return 1; }

#else
#error "define one FERRY_TEST_* variant"
#endif
