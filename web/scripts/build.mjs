// Bundles the demo page, the property-test page and the dev server into
// dist/, and, for the browser suite only, dist/planted/: the demo with a
// planted client bug swapped in at bundle time (test/browser/planted/);
// dist/fields/: the per-field demo, and dist/planted-fields/ its planted twin.
import { copyFile, mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { build } from "esbuild";

const common = { bundle: true, sourcemap: true, logLevel: "warning", target: "es2022" };
const planted = {
  name: "planted",
  setup(b) {
    b.onResolve({ filter: /client\/document\.js$/ }, (args) =>
      args.importer.endsWith("demo/main.ts") ? { path: resolve("test/browser/planted/document.ts") } : undefined,
    );
    b.onResolve({ filter: /client\/fields\.js$/ }, (args) =>
      args.importer.endsWith("demo/fields.ts") ? { path: resolve("test/browser/planted/fields.ts") } : undefined,
    );
  },
};
await mkdir("dist/planted", { recursive: true });
await mkdir("dist/fields", { recursive: true });
await mkdir("dist/planted-fields", { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: ["demo/main.ts"], outfile: "dist/demo.js", format: "esm", platform: "browser" }),
  build({ ...common, entryPoints: ["demo/main.ts"], outfile: "dist/planted/demo.js", format: "esm", platform: "browser", plugins: [planted] }),
  build({ ...common, entryPoints: ["demo/fields.ts"], outfile: "dist/fields/fields.js", format: "esm", platform: "browser" }),
  build({ ...common, entryPoints: ["demo/fields.ts"], outfile: "dist/planted-fields/fields.js", format: "esm", platform: "browser", plugins: [planted] }),
  build({ ...common, entryPoints: ["test/browser/property-page.ts"], outfile: "dist/property.js", format: "esm", platform: "browser" }),
  build({ ...common, entryPoints: ["scripts/demo.ts"], outfile: "dist/demo-server.mjs", format: "esm", platform: "node", packages: "external" }),
  copyFile("demo/index.html", "dist/index.html"),
  copyFile("demo/index.html", "dist/planted/index.html"),
  copyFile("demo/fields.html", "dist/fields/index.html"),
  copyFile("demo/fields.html", "dist/planted-fields/index.html"),
  copyFile("test/browser/property.html", "dist/property.html"),
]);
