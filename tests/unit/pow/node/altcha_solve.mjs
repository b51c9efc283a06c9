// The official ALTCHA v1 solver (altcha-lib's solveChallenge) on challenges read from stdin:
// one JSON array of {algorithm, challenge, salt, maxnumber}; prints one JSON line per challenge
// {"number", "ms"} as it is solved (the benchmark shows progress from these lines).
import { solveChallenge } from "altcha-lib/v1";

let input = "";
for await (const chunk of process.stdin) input += chunk;
for (const c of JSON.parse(input)) {
  const began = performance.now();
  const solution = await solveChallenge(c.challenge, c.salt, c.algorithm, c.maxnumber).promise;
  const ms = performance.now() - began;
  process.stdout.write(JSON.stringify({ number: solution?.number ?? null, ms }) + "\n");
}
