// Reads the GGUF file named on the command line with @huggingface/gguf, an independent parser, and prints
// {version, tensor_count, kv_count, tensor_data_offset, file_size, metadata: {key: {type, subType?, value}},
// tensors: [{name, shape, dtype, offset, nbytes}]} as JSON on stdout. 64-bit integers (JS BigInt) are printed as
// decimal strings. Used by tests/io/gguf_js_test.cpp. Setup: `npm ci` in this folder.
import { statSync } from "node:fs";
import { gguf } from "@huggingface/gguf";

// ggml's [elements per block, bytes per block] of the types unmask writes (ggml.c's type_traits; the package keeps
// the same table, GGML_QUANT_SIZES, but does not export it).
const BLOCKS = {
  0: [1, 4],      // F32
  1: [1, 2],      // F16
  2: [32, 18],    // Q4_0: f16 scale, 16 bytes of nibbles
  3: [32, 20],    // Q4_1: f16 scale and min, 16 bytes of nibbles
  6: [32, 22],    // Q5_0: f16 scale, 4 bytes of fifth bits, 16 bytes of nibbles
  7: [32, 24],    // Q5_1: f16 scale and min, 4 bytes of fifth bits, 16 bytes of nibbles
  8: [32, 34],    // Q8_0: f16 scale, 32 int8
  10: [256, 84],  // Q2_K: 16 bytes of 4-bit scales/mins, 64 bytes of 2-bit codes, f16 d, dmin
  11: [256, 110], // Q3_K: 32 bytes of high bits, 64 bytes of 2-bit codes, 12 bytes of 6-bit scales, f16 d
  12: [256, 144], // Q4_K: f16 d, dmin, 12 bytes of 6-bit scales, 128 bytes of nibbles
  13: [256, 176], // Q5_K: f16 d, dmin, 12 bytes of 6-bit scales, 32 bytes of fifth bits, 128 bytes of nibbles
  14: [256, 210], // Q6_K: 128 bytes low nibbles, 64 high bits, 16 int8 scales, f16 d
  30: [1, 2],     // BF16
};

// Bytes of a tensor, or null for a type missing from the table (the C++ test then fails on it).
function nbytes(dtype, shape) {
  const b = BLOCKS[dtype];
  if (!b) return null;
  const n = shape.reduce((a, x) => a * x, 1n);
  return ((n / BigInt(b[0])) * BigInt(b[1])).toString();
}

const path = process.argv[2];
if (!path) {
  console.error("usage: node read.mjs FILE.gguf");
  process.exit(2);
}

const { metadata, typedMetadata, tensorInfos, tensorDataOffset } = await gguf(path, {
  allowLocalFile: true,
  typedMetadata: true,
});

const out = {
  version: metadata.version,
  tensor_count: metadata.tensor_count,
  kv_count: metadata.kv_count,
  tensor_data_offset: tensorDataOffset,
  file_size: statSync(path).size,
  metadata: {},
  tensors: tensorInfos.map((t) => ({
    name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset, nbytes: nbytes(t.dtype, t.shape),
  })),
};
for (const [key, entry] of Object.entries(typedMetadata)) {
  if (key === "version" || key === "tensor_count" || key === "kv_count") continue;
  out.metadata[key] = entry;
}
// Object.entries keeps insertion order for string keys, so keys come out in file order.
out.metadata_order = Object.keys(out.metadata);

const bigints = (_key, value) => (typeof value === "bigint" ? value.toString() : value);
process.stdout.write(JSON.stringify(out, bigints) + "\n");
