// Reads the GGUF file named on the command line with @huggingface/gguf, an independent parser, and prints
// {version, tensor_count, kv_count, tensor_data_offset, metadata: {key: {type, subType?, value}}, tensors: [...]}
// as JSON on stdout. 64-bit integers (JS BigInt) are printed as decimal strings. Used by tests/io/gguf_js_test.cpp.
// Setup: `npm ci` in this folder.
import { gguf } from "@huggingface/gguf";

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
  metadata: {},
  tensors: tensorInfos.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset })),
};
for (const [key, entry] of Object.entries(typedMetadata)) {
  if (key === "version" || key === "tensor_count" || key === "kv_count") continue;
  out.metadata[key] = entry;
}
// Object.entries keeps insertion order for string keys, so keys come out in file order.
out.metadata_order = Object.keys(out.metadata);

const bigints = (_key, value) => (typeof value === "bigint" ? value.toString() : value);
process.stdout.write(JSON.stringify(out, bigints) + "\n");
