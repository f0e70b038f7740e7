/* spm_shim.h: the plain C API of libr1kit_spm.so, r1kit's only door to SentencePiece.
 *
 * Why a shim: Debian 12's libsentencepiece bundles and exports its own protobuf-lite
 * (3.14), while LibTorch and gRPC link libprotobuf 3.21; linked into one binary they
 * collide (docs/design.md, "SentencePiece: the shim and its two traps"). So
 * libr1kit_spm.so alone links sentencepiece, hides every symbol but the functions below,
 * and data/tokenizer.cpp loads it with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND).
 * Nothing else may link sentencepiece.
 *
 * Conventions:
 * - Functions returning int return 0 on success and -1 on error unless said otherwise;
 *   r1kit_spm_last_error() then describes the error (per thread).
 * - Output buffers follow a two-call size protocol: a function writes at most
 *   `capacity` items and returns the full size needed, so a caller whose buffer was too
 *   small calls again with a bigger one (capacity 0 with a null buffer asks for the size).
 * - No C++ exception crosses this boundary.
 * - A loaded processor is immutable: encode, decode and the lookups may be called from
 *   many threads at once. Load and destroy need exclusive access. Training is serialized
 *   inside the library (SentencePiece's trainer keeps global state).
 * - Text is UTF-8, passed with an explicit length (it may contain NUL bytes).
 */
#ifndef R1KIT_DATA_SPM_SHIM_SPM_SHIM_H_
#define R1KIT_DATA_SPM_SHIM_SPM_SHIM_H_

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define R1KIT_SPM_API __attribute__((visibility("default")))
#else
#define R1KIT_SPM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature below changes; the loader refuses a mismatch. */
#define R1KIT_SPM_ABI_VERSION 1

/* An opaque SentencePiece processor. */
typedef struct r1kit_spm r1kit_spm;

/* Receives bytes produced by the library (a serialized model). Must copy them. */
typedef void (*r1kit_spm_sink)(void* ctx, const char* data, size_t size);

/* R1KIT_SPM_ABI_VERSION of the library. */
R1KIT_SPM_API int r1kit_spm_abi_version(void);

/* The last error message on this thread ("" if none). Valid until the next call. */
R1KIT_SPM_API const char* r1kit_spm_last_error(void);

/* A new, empty processor (NULL only when out of memory). */
R1KIT_SPM_API r1kit_spm* r1kit_spm_create(void);
/* Frees a processor; NULL is a no-op. */
R1KIT_SPM_API void r1kit_spm_destroy(r1kit_spm* spm);

/* Loads a model from a file path. */
R1KIT_SPM_API int r1kit_spm_load_file(r1kit_spm* spm, const char* path);
/* Loads a model from serialized ModelProto bytes (the content of a .model file). */
R1KIT_SPM_API int r1kit_spm_load_bytes(r1kit_spm* spm, const char* data, size_t size);
/* Passes the serialized model to `sink` (for saving it elsewhere). */
R1KIT_SPM_API int r1kit_spm_serialize(const r1kit_spm* spm, r1kit_spm_sink sink, void* ctx);

/* Encodes text into ids. Writes min(count, capacity) ids to `ids` and returns count,
 * or -1 on error. No BOS/EOS is added. */
R1KIT_SPM_API int64_t r1kit_spm_encode(const r1kit_spm* spm, const char* text, size_t len,
                                       int32_t* ids, size_t capacity);
/* Decodes ids into text. Ids outside [0, vocab size) are skipped; control ids (BOS, EOS,
 * PAD) decode to nothing. Writes min(size, capacity) bytes to `out` (not NUL-terminated)
 * and returns size, or -1 on error. */
R1KIT_SPM_API int64_t r1kit_spm_decode(const r1kit_spm* spm, const int32_t* ids, size_t n,
                                       char* out, size_t capacity);

/* Number of pieces in the vocabulary (0 when nothing is loaded). */
R1KIT_SPM_API int r1kit_spm_vocab_size(const r1kit_spm* spm);
/* The piece of `id`: writes min(size, capacity) bytes and returns size, or -1 when `id`
 * is out of range. */
R1KIT_SPM_API int64_t r1kit_spm_id_to_piece(const r1kit_spm* spm, int id, char* out,
                                            size_t capacity);
/* The id of a piece, or -1 when the vocabulary does not hold it. */
R1KIT_SPM_API int r1kit_spm_piece_to_id(const r1kit_spm* spm, const char* piece, size_t len);
/* Reserved ids, -1 when the model has none. */
R1KIT_SPM_API int r1kit_spm_bos_id(const r1kit_spm* spm);
R1KIT_SPM_API int r1kit_spm_eos_id(const r1kit_spm* spm);
R1KIT_SPM_API int r1kit_spm_pad_id(const r1kit_spm* spm);
R1KIT_SPM_API int r1kit_spm_unk_id(const r1kit_spm* spm);

/* Trains with a SentencePiece command line, as spm_train takes it
 * ("--input=corpus.txt --model_prefix=m --vocab_size=512"); writes <prefix>.model and
 * <prefix>.vocab. */
R1KIT_SPM_API int r1kit_spm_train_args(const char* args);

/* Trains from explicit parameters and passes the serialized model to `sink`.
 * - keys/values: n_kv TrainerSpec / NormalizerSpec fields as spm_train flags without
 *   the dashes ("vocab_size" -> "512"). Two extra keys are understood: "random_seed"
 *   (seeds SentencePiece's generator) and "minloglevel" (0 info .. 2 error; the
 *   library's log level is restored afterwards). "input" and "model_prefix" are ignored.
 * - input_files: corpus files, one sentence per line, read in order.
 * - sentences/sentence_lens: in-memory sentences, read after the files.
 * At least one sentence source must be given. */
R1KIT_SPM_API int r1kit_spm_train(const char* const* keys, const char* const* values, size_t n_kv,
                                  const char* const* input_files, size_t n_files,
                                  const char* const* sentences, const size_t* sentence_lens,
                                  size_t n_sentences, r1kit_spm_sink sink, void* ctx);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* R1KIT_DATA_SPM_SHIM_SPM_SHIM_H_ */
