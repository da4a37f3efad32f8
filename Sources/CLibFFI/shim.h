/*
 * libffi for Prism's function plugins (PrismHost/Internals/ForeignFunction).
 * Found with pkg-config (libffi, Debian's libffi-dev). The helpers keep the
 * addresses of libffi's type descriptors and the calling sequence in C.
 *
 * Signature letters: i int32_t, l int64_t, f float, d double, s const char *
 * (NUL-terminated UTF-8), b const uint8_t * followed by size_t (two C
 * parameters). Only s and b are passed as arguments; any letter but s and b
 * may be a result.
 */
#ifndef PRISM_CLIBFFI_SHIM_H
#define PRISM_CLIBFFI_SHIM_H

#include <ffi.h>
#include <stddef.h>
#include <stdint.h>

/* The most C parameters a function plugin takes (4 inputs, b counts 2). */
#define PRISM_FFI_MAX_PARAMETERS 8

/* Prepares `cif` for a function returning `result` and taking the text
 * arguments `args` (letters s and b, NUL-terminated). `types` holds
 * PRISM_FFI_MAX_PARAMETERS entries and must live as long as `cif`.
 * Returns 0, or -1 for a letter or count outside the above, or libffi's
 * status. */
static inline int prism_ffi_prepare(ffi_cif *cif, ffi_type **types, char result, const char *args) {
  ffi_type *rtype;
  switch (result) {
    case 'i': rtype = &ffi_type_sint32; break;
    case 'l': rtype = &ffi_type_sint64; break;
    case 'f': rtype = &ffi_type_float; break;
    case 'd': rtype = &ffi_type_double; break;
    default: return -1;
  }
  unsigned n = 0;
  for (const char *a = args; *a; a++) {
    if (n + 2 > PRISM_FFI_MAX_PARAMETERS) return -1;
    if (*a == 's') {
      types[n++] = &ffi_type_pointer;
    } else if (*a == 'b') {
      types[n++] = &ffi_type_pointer;
      types[n++] = sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32;
    } else {
      return -1;
    }
  }
  ffi_status status = ffi_prep_cif(cif, FFI_DEFAULT_ABI, n, rtype, types);
  return status == FFI_OK ? 0 : (int)status;
}

/* Calls `fn` (prepared as above with `args`) with texts[k] (NUL-terminated
 * for s; with lengths[k] for b). The result is stored in *real for f and d,
 * in *integer for i and l. */
static inline void prism_ffi_call(ffi_cif *cif, void *fn, char result, const char *args,
                                  const char *const *texts, const size_t *lengths,
                                  double *real, int64_t *integer) {
  const void *pointers[PRISM_FFI_MAX_PARAMETERS];
  size_t sizes[PRISM_FFI_MAX_PARAMETERS];
  void *values[PRISM_FFI_MAX_PARAMETERS];
  unsigned n = 0, k = 0;
  for (const char *a = args; *a; a++, k++) {
    pointers[n] = texts[k];
    values[n] = &pointers[n];
    n++;
    if (*a == 'b') {
      sizes[n] = lengths[k];
      values[n] = &sizes[n];
      n++;
    }
  }
  union {
    ffi_arg integral;
    int64_t wide;
    float single;
    double real;
  } out;
  out.wide = 0;
  ffi_call(cif, FFI_FN(fn), &out, values);
  switch (result) {
    case 'i': *integer = (int32_t)out.integral; break;
    case 'l': *integer = out.wide; break;
    case 'f': *real = out.single; break;
    default: *real = out.real; break;
  }
}

#endif
