// Password hashes: argon2id in PHC strings ("$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>"), the one
// format every runtime reads, so a database made on Bun signs people in on Deno and back again
// (tests/runtime-compat.test.ts). Bun hashes natively (Bun.password); elsewhere hash-wasm's argon2id
// runs as WebAssembly: no native addon, so no --allow-ffi, which a hosted edge does not grant.
import { randomBytes } from 'node:crypto';

/** Bun.password's own defaults for argon2id, spelled out so both implementations cost the same. */
const COST = { memoryKiB: 65_536, passes: 2, parallelism: 1, hashBytes: 32, saltBytes: 16 } as const;

interface BunPassword {
  hash(password: string, options: { algorithm: 'argon2id'; memoryCost: number; timeCost: number }): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
}
const bunPassword = (globalThis as { Bun?: { password: BunPassword } }).Bun?.password;

export async function hashPassword(password: string): Promise<string> {
  if (bunPassword) return bunPassword.hash(password, { algorithm: 'argon2id', memoryCost: COST.memoryKiB, timeCost: COST.passes });
  const { argon2id } = await import('hash-wasm');
  return argon2id({
    password, salt: randomBytes(COST.saltBytes), memorySize: COST.memoryKiB, iterations: COST.passes,
    parallelism: COST.parallelism, hashLength: COST.hashBytes, outputType: 'encoded',
  });
}

/** False for a wrong password and for a hash this format does not describe (never throws on one). */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (bunPassword) return bunPassword.verify(password, hash).catch(() => false);
  const { argon2Verify } = await import('hash-wasm');
  return argon2Verify({ password, hash }).catch(() => false);
}
