// The official Cap server (@cap.js/server) in one process: print a fresh challenge as one JSON
// line, read the redeem body {"token", "solutions"} as one JSON line, print the redeem result.
// Usage: node cap_roundtrip.mjs <count> <size> <difficulty>
import Cap from "@cap.js/server";
import { createInterface } from "node:readline";

const [count, size, difficulty] = process.argv.slice(2).map(Number);
const cap = new Cap({ noFSState: true, disableAutoCleanup: true });
const challenge = await cap.createChallenge({
  challengeCount: count,
  challengeSize: size,
  challengeDifficulty: difficulty,
});
process.stdout.write(JSON.stringify(challenge) + "\n");

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const result = await cap.redeemChallenge(JSON.parse(line));
  process.stdout.write(JSON.stringify(result) + "\n");
  break;
}
process.exit(0);
