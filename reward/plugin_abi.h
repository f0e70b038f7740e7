/* The C ABI of shared-library reward plug-ins.
 *
 * A plug-in is a shared library that exports one C function,
 *     const r1kit_reward_plugin_v1* r1kit_reward_plugins(size_t* count);
 * returning a static array of *count reward descriptions. r1kit loads it with
 * dlopen(RTLD_NOW | RTLD_LOCAL) (reward/plugin.h) and registers every reward under its
 * name, so a recipe names plug-in rewards like built-in ones. Samples cross the
 * boundary as JSON text, so the plug-in needs no r1kit headers beyond this one and no
 * matching compiler, standard library or LibTorch.
 *
 * Follows the plain-C plug-in style of SQLite loadable extensions and Python's C API
 * (a versioned struct of function pointers), not C++ classes across a .so boundary,
 * whose ABI depends on the compiler and standard library.
 *
 * Thread-safety required of plug-ins: score() may be called on one instance from
 * several threads at once; create() and destroy() are not called concurrently with
 * score() on the same instance.
 */
#ifndef R1KIT_REWARD_PLUGIN_ABI_H_
#define R1KIT_REWARD_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define R1KIT_REWARD_PLUGIN_ABI_VERSION 1u

typedef struct r1kit_reward_plugin_v1 {
  uint32_t abi_version; /* R1KIT_REWARD_PLUGIN_ABI_VERSION */
  const char* name;     /* registry name, e.g. "keyword_bonus" */
  const char* doc;      /* one line for `r1kit reward list` */
  /* Builds an instance from its arguments: a JSON object (the recipe keys other than
   * name and weight). Returns NULL on error, with a NUL-terminated message in err. */
  void* (*create)(const char* args_json, char* err, size_t err_size);
  /* Scores n samples. samples_json is a JSON array of n objects
   *   {"prompt": str, "completion": str, "completion_ids": [int], "metadata": {...}}.
   * Writes n doubles to out (NaN: cannot judge). Returns 0 on success; non-zero with a
   * message in err marks the whole batch "cannot judge". Must never crash on any text. */
  int (*score)(void* instance, const char* samples_json, size_t n, double* out, char* err,
               size_t err_size);
  void (*destroy)(void* instance);
} r1kit_reward_plugin_v1;

/* The one symbol a plug-in exports. */
typedef const r1kit_reward_plugin_v1* (*r1kit_reward_plugins_fn)(size_t* count);
#define R1KIT_REWARD_PLUGINS_SYMBOL "r1kit_reward_plugins"

#ifdef __cplusplus
}
#endif

#endif /* R1KIT_REWARD_PLUGIN_ABI_H_ */
