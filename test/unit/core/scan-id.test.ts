import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { hashStream, scanIdFromContent, scanIdFromObjectIdentity, sha256Hex } from '../../../core/scan-id';

const SHA = 'a'.repeat(64);

describe('scanIdFromContent', () => {
  it('is 32 lowercase hex characters and deterministic', () => {
    // Prepare / Act
    const first = scanIdFromContent('site-a', 'study-1', SHA);
    const second = scanIdFromContent('site-a', 'study-1', SHA);

    // Assess
    expect(first).toMatch(/^[0-9a-f]{32}$/);
    expect(second).toBe(first);
  });

  it('is the truncated domain-separated sha256', () => {
    // Prepare
    const expected = createHash('sha256')
      .update(`sonomark/scan/v1\0site-a\0study-1\0${SHA}`)
      .digest('hex')
      .slice(0, 32);

    // Act
    const id = scanIdFromContent('site-a', 'study-1', SHA);

    // Assess
    expect(id).toBe(expected);
  });

  it('differs by site, by study and by content', () => {
    // Prepare
    const base = scanIdFromContent('site-a', 'study-1', SHA);

    // Act
    const ids = [
      scanIdFromContent('site-b', 'study-1', SHA),
      scanIdFromContent('site-a', 'study-2', SHA),
      scanIdFromContent('site-a', 'study-1', 'b'.repeat(64)),
    ];

    // Assess
    for (const id of ids) expect(id).not.toBe(base);
    expect(new Set(ids).size).toBe(3);
  });

  it('does not let a site/study boundary shift collide', () => {
    // Prepare / Act
    const a = scanIdFromContent('ab', 'c', SHA);
    const b = scanIdFromContent('a', 'bc', SHA);

    // Assess
    expect(a).not.toBe(b);
  });
});

describe('scanIdFromObjectIdentity', () => {
  it('is 32 hex, deterministic and differs by versionId and etag', () => {
    // Prepare
    const base = scanIdFromObjectIdentity('bucket', 'uploads/s/st/x.mp4', 'v1', '"etag1"');

    // Act
    const again = scanIdFromObjectIdentity('bucket', 'uploads/s/st/x.mp4', 'v1', '"etag1"');
    const otherVersion = scanIdFromObjectIdentity('bucket', 'uploads/s/st/x.mp4', 'v2', '"etag1"');
    const otherEtag = scanIdFromObjectIdentity('bucket', 'uploads/s/st/x.mp4', 'v1', '"etag2"');
    const noVersion = scanIdFromObjectIdentity('bucket', 'uploads/s/st/x.mp4', undefined, '"etag1"');

    // Assess
    expect(base).toMatch(/^[0-9a-f]{32}$/);
    expect(again).toBe(base);
    expect(new Set([base, otherVersion, otherEtag, noVersion]).size).toBe(4);
  });

  it('does not collide with a content-derived id', () => {
    // Prepare / Act
    const byIdentity = scanIdFromObjectIdentity('s', 'st', SHA);
    const byContent = scanIdFromContent('s', 'st', SHA);

    // Assess
    expect(byIdentity).not.toBe(byContent);
  });
});

describe('sha256Hex', () => {
  it('hashes strings and bytes alike', () => {
    // Prepare / Act
    const fromString = sha256Hex('abc');
    const fromBytes = sha256Hex(new Uint8Array([0x61, 0x62, 0x63]));

    // Assess
    expect(fromString).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(fromBytes).toBe(fromString);
  });
});

describe('hashStream', () => {
  const chunks = [Buffer.from('hello '), Buffer.from('wonderful '), Buffer.from('world')];
  const whole = Buffer.concat(chunks);

  it('equals sha256 of the concatenation, with the right size', async () => {
    // Prepare
    const stream = Readable.from(chunks);

    // Act
    const out = await hashStream(stream, 4096);

    // Assess
    expect(out.sha256).toBe(createHash('sha256').update(whole).digest('hex'));
    expect(out.size).toBe(21);
    expect(out.head.equals(whole)).toBe(true);
  });

  it('truncates the head to headBytes across chunk boundaries', async () => {
    // Prepare
    const stream = Readable.from(chunks);

    // Act
    const out = await hashStream(stream, 8);

    // Assess
    expect(out.head.toString()).toBe('hello wo');
    expect(out.head.length).toBe(8);
    expect(out.size).toBe(21);
    expect(out.sha256).toBe(sha256Hex(whole));
  });

  it('stops the head exactly at a chunk boundary', async () => {
    // Prepare
    const stream = Readable.from(chunks);

    // Act
    const out = await hashStream(stream, 6);

    // Assess
    expect(out.head.toString()).toBe('hello ');
  });

  it('accepts an async iterable of Uint8Array and an empty stream', async () => {
    // Prepare
    async function* gen() {
      yield new Uint8Array([1, 2]);
      yield new Uint8Array([3]);
    }

    // Act
    const out = await hashStream(gen(), 2);
    const empty = await hashStream(Readable.from([]));

    // Assess
    expect(out.size).toBe(3);
    expect([...out.head]).toEqual([1, 2]);
    expect(out.sha256).toBe(sha256Hex(new Uint8Array([1, 2, 3])));
    expect(empty).toEqual({
      sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      size: 0,
      head: Buffer.alloc(0),
    });
  });
});
