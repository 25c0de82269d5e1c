// Validates one .glb with the Khronos glTF validator and prints its report
// as JSON on stdout (tests/glb.rs reads it). Exit 0 when the file could be
// validated at all, whatever the report says.
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs FILE.glb");
  process.exit(2);
}
const bytes = new Uint8Array(await readFile(path));
const report = await validator.validateBytes(bytes, {
  uri: path,
  maxIssues: 100,
  externalResourceFunction: () => Promise.reject(new Error("external resources are not used")),
});
process.stdout.write(JSON.stringify(report, null, 1) + "\n");
