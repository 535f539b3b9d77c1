// The checked-in generated code is exactly what buf makes from ../proto.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { expect, test } from "vitest";

const web = join(import.meta.dirname, "../..");

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

test("src/gen matches the proto files", () => {
  const out = mkdtempSync(join(tmpdir(), "gen-"));
  try {
    execFileSync("npx", ["buf", "generate", "--template", "buf.gen.yaml", "--output", out], { cwd: web });
    const fresh = join(out, "src/gen");
    const checkedIn = join(web, "src/gen");
    expect(files(checkedIn)).toEqual(files(fresh));
    for (const file of files(fresh)) {
      expect(readFileSync(join(checkedIn, file), "utf8"), `${file} drifted: run npm run generate`).toBe(
        readFileSync(join(fresh, file), "utf8"),
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 60_000);
