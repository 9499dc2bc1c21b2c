/* Ferry's plugin ABI: inputs and processors in shared objects, loaded from agent.plugins_dir.
 *
 * A plain C99 header, usable from C and C++, with no dependency on the rest of Ferry. A
 * plugin is one shared object (`*.so`) exporting one function, FERRY_PLUGIN_ENTRY_NAME,
 * that returns a pointer to a constant ferry_plugin_descriptor. The host reads the first
 * two fields (abi_version, struct_size) before anything else and refuses a library built
 * for another ABI version, naming the file, its version and the host's.
 * docs/plugin_abi.md is the reference; plugins/examples/ has an input in C and a processor
 * in C++.
 *
 * Versioning. FERRY_PLUGIN_ABI_VERSION changes when a field changes meaning, type or
 * position, or when a rule below changes. Fields are only ever appended at the end of a
 * struct, and such an addition does not change the version: struct_size tells the other
 * side which fields exist (the host treats fields beyond a plugin's struct_size as NULL).
 * The entry symbol's name never changes, so a library of another version is reported as
 * such, not as a missing symbol.
 *
 * Data. Records cross as UTF-8 JSON objects, one per line, each line ending in '\n'
 * (NDJSON); a whole batch crosses in one call, never one call per record. Records the host
 * receives that are not single JSON objects are dropped and counted
 * (ferry_dropped_records_total{reason="plugin_bad_record"}); the valid ones around them go
 * on. Sizes are byte counts; strings without a size are NUL-terminated.
 *
 * Ownership and lifetime. Every pointer the host passes is owned by the host and valid only
 * during the call it is passed to, except: the ferry_host_api (valid from create() until
 * destroy() returns) and the ferry_emitter given to start() (valid until stop() returns).
 * Every pointer the plugin hands the host (records, reasons, messages) is only read during
 * that call; the host copies what it keeps. The descriptor and everything it points to
 * (names, option tables) must stay valid while the library is loaded (use static data).
 *
 * Threads. create() and destroy() run on the host's control thread. An input's
 * interval_ns(), collect() and start() run on the input's own thread; stop() runs on
 * another thread while start() may still be running or serving. A service input may call
 * the emitter from threads of its own, but never from two threads at the same time. A
 * processor's process() and tick() are never called at the same time for one instance (the
 * host serialises them), but may come from different threads. A plugin never calls the
 * host after destroy() has returned: destroy() joins every thread the plugin started.
 *
 * Errors. Functions return FERRY_OK or one of the FERRY_ERR_* codes and, on error, write a
 * NUL-terminated message of at most error_size bytes (including the NUL) to `error`.
 * Nothing may unwind through this ABI: a plugin written in C++ must catch every exception
 * in each function it exports through the descriptor and turn it into an error code.
 */
#ifndef FERRY_PLUGIN_ABI_H
#define FERRY_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. */
#define FERRY_PLUGIN_ABI_VERSION 1

/* The one symbol a plugin exports (stable across ABI versions). */
#define FERRY_PLUGIN_ENTRY ferry_plugin_entry
#define FERRY_PLUGIN_ENTRY_NAME "ferry_plugin_entry"

/* Default symbol visibility for the entry, also with -fvisibility=hidden. */
#if defined(__GNUC__)
#define FERRY_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define FERRY_PLUGIN_EXPORT
#endif

/* Result codes. */
#define FERRY_OK 0
#define FERRY_ERR_INVALID 1     /* bad configuration or input; retrying the same will not help */
#define FERRY_ERR_UNAVAILABLE 2 /* transient: the source is down; the host calls again later */
#define FERRY_ERR_FULL 3        /* emit(): nothing was accepted, the host is full; retry later */
#define FERRY_ERR_CANCELLED 4   /* emit(): the agent is stopping; nothing was accepted */
#define FERRY_ERR_INTERNAL 5    /* a bug or an exhausted resource */

/* Plugin kinds. */
#define FERRY_PLUGIN_INPUT 1
#define FERRY_PLUGIN_PROCESSOR 2

/* Option types. Values reach create() already validated, typed as noted. */
#define FERRY_OPTION_STRING 1      /* ferry_config_value.string */
#define FERRY_OPTION_INT 2         /* .integer (signed 64-bit) */
#define FERRY_OPTION_BOOL 3        /* .integer: 0 or 1 */
#define FERRY_OPTION_DOUBLE 4      /* .number */
#define FERRY_OPTION_DURATION 5    /* .integer: nanoseconds ("250ms", "30s" in the config) */
#define FERRY_OPTION_SIZE 6        /* .integer: bytes ("64KiB", "1GiB" in the config) */
#define FERRY_OPTION_STRING_LIST 7 /* .list, .list_size */

/* Log levels for ferry_host_api.log. */
#define FERRY_LOG_DEBUG 0
#define FERRY_LOG_INFO 1
#define FERRY_LOG_WARN 2
#define FERRY_LOG_ERROR 3

/* One configuration key the plugin accepts. The host validates the config against these
 * exactly as for built-in plugins (unknown keys, wrong types and missing required keys are
 * errors naming file, line and key) and lists them in `ferry plugins`. */
typedef struct ferry_option {
  const char* key;           /* snake_case */
  uint32_t type;             /* FERRY_OPTION_* */
  uint32_t required;         /* nonzero: the key must be given */
  const char* default_value; /* in config syntax ("10", "1s", "[a, b]"); NULL: no default */
  const char* help;          /* one line */
} ferry_option;

/* One validated option value; keys that were neither given nor defaulted are absent. */
typedef struct ferry_config_value {
  const char* key;
  uint32_t type; /* FERRY_OPTION_* */
  const char* string;
  int64_t integer;
  double number;
  const char* const* list;
  size_t list_size;
} ferry_config_value;

/* The validated configuration of one instance, in two equivalent forms: a JSON object
 * (NUL-terminated; durations as integer nanoseconds, sizes as integer bytes, lists as
 * arrays) and an array of typed values in declaration order. Valid during create() only:
 * copy what you keep. */
typedef struct ferry_config {
  const char* json;
  size_t json_size;
  const ferry_config_value* values;
  size_t value_count;
} ferry_config;

/* What the host offers a plugin instance. Valid from create() until destroy() returns;
 * its functions may be called from any thread. */
typedef struct ferry_host_api {
  uint32_t abi_version; /* the host's FERRY_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(ferry_host_api) in the host */
  void* ctx;            /* pass to the functions below */
  const char* agent_id;
  const char* instance_name; /* `name:` of the input or processor in the config */
  /* Writes one log line (FERRY_LOG_*), tagged with the instance. */
  void (*log)(void* ctx, int level, const char* message);
  /* Counts `n` records dropped for `reason` (short snake_case) in
   * ferry_dropped_records_total{reason}. */
  void (*count_dropped)(void* ctx, const char* reason, uint64_t n);
} ferry_host_api;

/* Where an input hands its records. */
typedef struct ferry_emitter {
  void* ctx;
  /* Hands a batch of NDJSON records (`size` bytes) to the host; `stream` NULL: the input's
   * configured stream. Blocks while the host is full (buffer policy `block`), at most
   * until stop. Returns FERRY_OK (copied: the caller may reuse its buffer),
   * FERRY_ERR_FULL or FERRY_ERR_CANCELLED (nothing accepted). */
  int (*emit)(void* ctx, const char* records, size_t size, const char* stream);
  /* Nonzero once the agent asked inputs to stop. */
  int (*stopping)(void* ctx);
  /* Waits up to `ns` nanoseconds or until stop is requested; returns stopping(). */
  int (*wait)(void* ctx, int64_t ns);
} ferry_emitter;

/* Where a processor puts what it keeps or produces during process(). */
typedef struct ferry_process_out {
  void* ctx;
  /* Appends NDJSON records that go on down the chain; may be called several times. */
  void (*append)(void* ctx, const char* records, size_t size);
  /* Reports `n` records left out on purpose (filter, sample); refused records are counted
   * through ferry_host_api.count_dropped instead. */
  void (*filtered)(void* ctx, uint64_t n);
} ferry_process_out;

/* Where a processor puts what tick() produces. */
typedef struct ferry_tick_out {
  void* ctx;
  /* Emits NDJSON records on `stream` (they pass through the processors after this one). */
  void (*emit)(void* ctx, const char* stream, const char* records, size_t size);
} ferry_tick_out;

typedef struct ferry_plugin_descriptor {
  /* Always the first two fields, in every version. */
  uint32_t abi_version; /* FERRY_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(ferry_plugin_descriptor) */

  uint32_t kind;       /* FERRY_PLUGIN_INPUT or FERRY_PLUGIN_PROCESSOR */
  const char* name;    /* the `type:` value in the config; [a-z0-9_]+, unique */
  const char* summary; /* one line for `ferry plugins` */
  const ferry_option* options;
  size_t option_count;

  /* Builds an instance from validated options. Must not start threads or open sources
   * (`ferry validate` calls it too): do that in start() or the first collect(). On
   * success stores the instance in *instance and returns FERRY_OK. */
  int (*create)(const ferry_config* config, const ferry_host_api* host, void** instance,
                char* error, size_t error_size);
  /* Frees an instance; stops and joins whatever it still runs. Required. */
  void (*destroy)(void* instance);

  /* Inputs. Polled: interval_ns() > 0, collect() is called that often on the input's
   * thread. Service: interval_ns() NULL or returning 0; start() is called once on the
   * input's thread and may serve until stop() or return at once and serve on threads of
   * its own; stop() must make it return (and stop emitting) within one second. */
  int64_t (*interval_ns)(void* instance);
  int (*collect)(void* instance, const ferry_emitter* emitter, char* error, size_t error_size);
  int (*start)(void* instance, const ferry_emitter* emitter, char* error, size_t error_size);
  void (*stop)(void* instance);

  /* Processors. process() reads the NDJSON `records` of `stream` and appends what goes on
   * to `out`. Bad records are refused through count_dropped, not by failing the call; a
   * non-OK result drops the whole batch (counted). Optional time-driven part:
   * tick_interval_ns() > 0 makes the host call tick() about that often, and once with
   * `final` nonzero at stop. */
  int (*process)(void* instance, const char* stream, const char* records, size_t size,
                 const ferry_process_out* out, char* error, size_t error_size);
  int64_t (*tick_interval_ns)(void* instance);
  int (*tick)(void* instance, int final, const ferry_tick_out* out, char* error, size_t error_size);
} ferry_plugin_descriptor;

/* The entry a plugin defines:
 *   FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void) { ... }
 * It may be called more than once and must return the same descriptor. */
typedef const ferry_plugin_descriptor* (*ferry_plugin_entry_fn)(void);
FERRY_PLUGIN_EXPORT const ferry_plugin_descriptor* FERRY_PLUGIN_ENTRY(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FERRY_PLUGIN_ABI_H */
