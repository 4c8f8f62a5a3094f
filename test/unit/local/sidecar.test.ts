/** The sidecar local mode uploads (local/sidecar.ts): the user's FILE.meta.json with the --modality hint merged in. */
import { localSidecar } from '../../../local/sidecar';
import { SidecarMetadata } from '../../../core/schemas';

describe('localSidecar', () => {
  it('the default hint (no --modality) is a defaultModality, which never conflicts', () => {
    const out = localSidecar(undefined, { modality: 'ultrasound', explicit: false });
    expect(out).toEqual({ text: JSON.stringify({ defaultModality: 'ultrasound' }) });
    expect(SidecarMetadata.safeParse(JSON.parse((out as { text: string }).text)).success).toBe(true);
  });

  it('an explicit --modality is the sidecar modality, merged with the user fields', () => {
    const out = localSidecar(JSON.stringify({ zone: 'R2', frameRate: 20 }), { modality: 'xray', explicit: true });
    expect(out).toEqual({ text: JSON.stringify({ zone: 'R2', frameRate: 20, modality: 'xray' }) });
  });

  it("the user's own modality stands against the default, and conflicts with a contrary explicit flag", () => {
    const user = JSON.stringify({ modality: 'xray' });
    expect(localSidecar(user, { modality: 'ultrasound', explicit: false })).toEqual({
      text: JSON.stringify({ modality: 'xray', defaultModality: 'ultrasound' }),
    });
    const conflict = localSidecar(user, { modality: 'ultrasound', explicit: true });
    expect(conflict).toEqual({
      conflict: expect.stringMatching(/"modality" is not ultrasound, but --modality ultrasound/),
    });
    expect(localSidecar(user, { modality: 'xray', explicit: true })).toEqual({ text: user });
  });

  it('no hint and no user sidecar: nothing to upload (a bare upload)', () => {
    expect(localSidecar(undefined, null)).toEqual({ text: undefined });
    expect(localSidecar('{}', null)).toEqual({ text: '{}' });
  });

  it('a user sidecar that is not a JSON object goes up as it is, for Validate to refuse with its reason', () => {
    for (const text of ['not json', '[1,2]', '"x"', 'null']) {
      expect(localSidecar(text, { modality: 'xray', explicit: true })).toEqual({ text });
    }
  });
});
