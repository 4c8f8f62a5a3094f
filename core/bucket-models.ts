/**
 * The models the artifacts bucket holds (MODELS.bucketPrefix): the manifest and the expert ONNX
 * files, deployed by the CDK app and by `sonomark experts publish --bucket`. LoadExperts reads
 * the manifest at run time; an expert function fetches its model into a per-container folder
 * and scores through the same LoadedManifest code as local mode, so the sha256 of every file is
 * checked on load (readVerifiedModel) whichever way it came.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MODELS } from './contract';
import { ModelError } from './errors';
import { manifestJson, validateManifest, type LoadedManifest } from './manifest';
import type { Manifest } from './schemas';

async function getText(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from((await out.Body?.transformToByteArray()) ?? new Uint8Array());
  } catch (err) {
    throw new ModelError(`Cannot read s3://${bucket}/${key}: ${(err as Error).message}`);
  }
}

/** Reads and validates the manifest the artifacts bucket holds (MODELS.bucketManifestKey). */
export async function readBucketManifest(s3: S3Client, bucket: string): Promise<Manifest> {
  const where = `the model manifest s3://${bucket}/${MODELS.bucketManifestKey}`;
  let bytes: Buffer;
  try {
    bytes = await getText(s3, bucket, MODELS.bucketManifestKey);
  } catch (err) {
    throw new ModelError(`Cannot read ${where}: ${(err as Error).message.replace(/^Cannot read s3:\/\/\S+: /, '')}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ModelError(`${where} is not JSON.`);
  }
  return validateManifest(json, where);
}

/**
 * Per container: the bucket's manifest and the expert files fetched so far, in a local folder.
 * A request for an expert version the cached manifest does not have reads the manifest again
 * (a version published since the container started).
 */
export class BucketModels {
  private loaded: LoadedManifest | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly dir: string = path.join(os.tmpdir(), 'sonomark-models'),
  ) {}

  /** The manifest with this expert version's file present locally (sha256 checked when the session loads it). */
  async forExpert(want: { name: string; version: string; sha256: string }): Promise<LoadedManifest> {
    const has = (l: LoadedManifest | undefined) =>
      l?.manifest.experts.some((e) => e.name === want.name && e.version === want.version && e.sha256 === want.sha256);
    if (!has(this.loaded)) {
      const manifest = await readBucketManifest(this.s3, this.bucket);
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(path.join(this.dir, MODELS.manifestFile), manifestJson(manifest));
      this.loaded = { dir: this.dir, manifest };
    }
    const loaded = this.loaded as LoadedManifest;
    const entry = loaded.manifest.experts.find((e) => e.name === want.name && e.version === want.version);
    if (!entry || entry.sha256 !== want.sha256) {
      throw new ModelError(
        `Expert ${want.name}@${want.version} (sha256 ${want.sha256.slice(0, 12)}…) is not in ${`s3://${this.bucket}/${MODELS.bucketManifestKey}`} ` +
          `(it has ${loaded.manifest.experts.map((e) => `${e.name}@${e.version}`).join(', ') || 'none'}).`,
      );
    }
    const file = path.join(this.dir, entry.file);
    const fetched = this.fetched.get(entry.file);
    if (fetched !== entry.sha256) {
      const bytes = await getText(this.s3, this.bucket, `${MODELS.bucketPrefix}${entry.file}`);
      mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, file);
      this.fetched.set(entry.file, entry.sha256);
    }
    return loaded;
  }

  private readonly fetched = new Map<string, string>();
}

/**
 * Puts a models directory's manifest and the files it names for `experts` (ONNX and card) under
 * the bucket's models/: the model files first, the manifest last, so the bucket's manifest never
 * names a file that is not there. The extractor's files are left out: the image carries them.
 */
export async function uploadModelsToBucket(
  s3: S3Client,
  bucket: string,
  loaded: LoadedManifest,
  experts: readonly string[] = loaded.manifest.experts.map((e) => e.name),
): Promise<string[]> {
  const keys: string[] = [];
  for (const e of loaded.manifest.experts.filter((x) => experts.includes(x.name))) {
    for (const file of [e.file, ...(e.card.cardFile ? [e.card.cardFile] : [])]) {
      const local = path.join(loaded.dir, file);
      if (file !== e.file && !existsSync(local)) continue; // a card the manifest names but nobody wrote
      const key = `${MODELS.bucketPrefix}${file}`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: readFileSync(local) }));
      keys.push(key);
    }
  }
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: MODELS.bucketManifestKey,
      Body: readFileSync(path.join(loaded.dir, MODELS.manifestFile)),
      ContentType: 'application/json',
    }),
  );
  keys.push(MODELS.bucketManifestKey);
  return keys;
}
