import { ConfigError, InvalidUploadError } from '../../../core/errors';
import { identifyingValues, isIdentifyingKeyword } from '../../../core/dicom/deidentify';
import { checkDicomHead, dicomHeadProblem, frameRate, parseDicom } from '../../../core/dicom/header';
import { dicomPseudonyms, pseudonym } from '../../../core/dicom/pseudonym';
import { chooseBModeRegion, readUltrasoundRegions } from '../../../core/dicom/regions';
import { describeTransferSyntax, transferSyntax } from '../../../core/dicom/transfer-syntax';
import { buildDicom, FAKE_IDENTIFIERS, RLE_LOSSLESS } from '../../helpers/dicom';

const SALT = 'a-test-salt-of-enough-length';
const region = (x0: number, y0: number, x1: number, y1: number, dataType = 1, spatialFormat = 1) => ({
  RegionSpatialFormat: spatialFormat,
  RegionDataType: dataType,
  RegionFlags: 0,
  RegionLocationMinX0: x0,
  RegionLocationMinY0: y0,
  RegionLocationMaxX1: x1,
  RegionLocationMaxY1: y1,
});

describe('core/dicom: transfer syntaxes', () => {
  it('knows the decoded encodings and names the others without echoing text', () => {
    expect(transferSyntax('1.2.840.10008.1.2.4.50')?.codec).toBe('jpeg-baseline');
    expect(transferSyntax('1.2.840.10008.1.2.4.91')?.codec).toBe('jpeg2000');
    expect(transferSyntax(RLE_LOSSLESS)?.codec).toBe('rle');
    expect(transferSyntax('1.2.840.10008.1.2.4.51')).toBeUndefined();
    expect(describeTransferSyntax('1.2.840.10008.1.2.4.51')).toBe('JPEG Extended (12-bit) (1.2.840.10008.1.2.4.51)');
    expect(describeTransferSyntax('1.2.3.4')).toBe('an unknown transfer syntax (1.2.3.4)');
    expect(describeTransferSyntax('Doe^Jane')).toBe('an unknown transfer syntax (an unreadable value)');
  });
});

describe('core/dicom: header checks (Validate)', () => {
  it('reads the image attributes and nothing identifying', () => {
    // Prepare
    const file = buildDicom({
      rows: 32,
      columns: 48,
      frames: [new Uint8Array(32 * 48), new Uint8Array(32 * 48)],
      extra: { CineRate: 30 },
    });

    // Act
    const check = checkDicomHead(file, true);

    // Assess
    expect(check).toMatchObject({
      kind: 'ok',
      header: { rows: 32, columns: 48, numberOfFrames: 2, modality: 'US', frameRate: { hz: 30, source: 'CineRate' } },
    });
    const text = JSON.stringify(check);
    for (const v of Object.values(FAKE_IDENTIFIERS)) expect(text).not.toContain(v);
  });

  it('DICOM_NO_PIXEL_DATA when the whole file has no image; undecided when only a head was read', () => {
    const noPixels = buildDicom({ rows: 8, columns: 8 });
    expect(dicomHeadProblem(noPixels, true)).toEqual({
      code: 'DICOM_NO_PIXEL_DATA',
      message: expect.stringMatching(/has no pixel data.*Accepted: DICOM Part 10 files with pixel data/),
    });
    expect(checkDicomHead(noPixels, false)).toEqual({ kind: 'incomplete', modality: 'US', numberOfFrames: undefined });
  });

  it('DICOM_UNSUPPORTED_TRANSFER_SYNTAX for an unknown encoding, listing the accepted ones', () => {
    const unknown = buildDicom({ rows: 8, columns: 8, transferSyntax: '1.2.3.4.5.6', frames: [new Uint8Array(64)] });
    expect(() => parseDicom(unknown)).toThrow(InvalidUploadError);
    expect(dicomHeadProblem(unknown, true)).toEqual({
      code: 'DICOM_UNSUPPORTED_TRANSFER_SYNTAX',
      message: expect.stringMatching(
        /an unknown transfer syntax \(1\.2\.3\.4\.5\.6\).*Accepted encodings: Implicit VR Little Endian.*JPEG 2000/,
      ),
    });
  });

  it('DICOM_NOT_PART10 for bytes without the DICM marker; DICOM_UNSUPPORTED_PHOTOMETRIC for an odd colour model', () => {
    expect(dicomHeadProblem(Buffer.from('just text, named scan.dcm'), true)?.code).toBe('DICOM_NOT_PART10');
    const hsv = buildDicom({
      rows: 8,
      columns: 8,
      samplesPerPixel: 3,
      photometric: 'HSV',
      frames: [new Uint8Array(192)],
    });
    expect(dicomHeadProblem(hsv, true)).toEqual({
      code: 'DICOM_UNSUPPORTED_PHOTOMETRIC',
      message: expect.stringMatching(/"HSV" with 3 sample\(s\).*Accepted: MONOCHROME1, MONOCHROME2, RGB/),
    });
  });
});

describe('core/dicom: frame rate from the timing attributes', () => {
  it.each([
    [{ FrameTime: '40' }, 25, 'FrameTime'],
    [{ FrameTimeVector: ['0', '20', '20', '20'] }, 50, 'FrameTimeVector'],
    [{ CineRate: 30 }, 30, 'CineRate'],
    [{ RecommendedDisplayFrameRate: 12 }, 12, 'RecommendedDisplayFrameRate'],
    [{ FrameTime: '33.3333', CineRate: 15 }, 30, 'FrameTime'],
  ])('%j → %d Hz from %s', (ds, hz, source) => {
    const got = frameRate(ds);
    expect(got?.source).toBe(source);
    expect(got?.hz).toBeCloseTo(hz, 2);
  });

  it('none when absent or nonsensical', () => {
    expect(frameRate({})).toBeUndefined();
    expect(frameRate({ FrameTime: '0', CineRate: -3 })).toBeUndefined();
  });
});

describe('core/dicom: ultrasound regions', () => {
  it('crops to the largest 2D tissue region, clamped to the image', () => {
    const regions = readUltrasoundRegions([
      region(0, 0, 20, 20, 3, 3), // spectral Doppler strip
      region(10, 10, 300, 200, 2), // colour flow box
      region(5, 8, 700, 100, 1), // tissue, wider than the image
    ]);
    expect(chooseBModeRegion(regions, 640, 480)).toEqual({ x0: 5, y0: 8, x1: 639, y1: 100 });
  });

  it('falls back to a 2D colour-flow region; none for degenerate or full-frame regions', () => {
    expect(chooseBModeRegion(readUltrasoundRegions([region(10, 10, 60, 50, 2)]), 64, 64)).toEqual({
      x0: 10,
      y0: 10,
      x1: 60,
      y1: 50,
    });
    expect(chooseBModeRegion(readUltrasoundRegions([region(50, 50, 10, 10)]), 64, 64)).toBeUndefined();
    expect(chooseBModeRegion(readUltrasoundRegions([region(0, 0, 63, 63)]), 64, 64)).toBeUndefined();
    expect(chooseBModeRegion([], 64, 64)).toBeUndefined();
  });
});

describe('core/dicom: pseudonyms and de-identification', () => {
  it('a keyed one-way pseudonym: stable per salt, different across salts and kinds, never the UID', () => {
    const uid = FAKE_IDENTIFIERS.StudyInstanceUID;
    const a = pseudonym(SALT, 'study', uid);
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(pseudonym(SALT, 'study', uid)).toBe(a);
    expect(pseudonym(`${SALT}-other`, 'study', uid)).not.toBe(a);
    expect(pseudonym(SALT, 'series', uid)).not.toBe(a);
    expect(dicomPseudonyms(SALT, { study: uid, series: undefined })).toEqual({ study: a, series: undefined });
  });

  it('refuses a short salt with the variable name', () => {
    expect(() => pseudonym('short', 'study', '1.2.3')).toThrow(ConfigError);
    expect(() => pseudonym('short', 'study', '1.2.3')).toThrow(/DICOM_PSEUDONYM_SALT must be at least 16/);
  });

  it('lists every identifying value of a data set, in sequences too', () => {
    const { dataset } = parseDicom(
      buildDicom({
        rows: 8,
        columns: 8,
        frames: [new Uint8Array(64)],
        extra: { OperatorsName: 'Sono^Grapher', ReferencedStudySequence: [{ ReferencedSOPInstanceUID: '9.8.7.6.5' }] },
      }),
    );
    const values = identifyingValues(dataset);
    for (const v of ['Doe^Jane^Fakename', 'Jane', 'PID-4711-FAKE', 'Fake General Hospital', 'SN-FAKE-0042']) {
      expect(values).toContain(v);
    }
    expect(values).toEqual(expect.arrayContaining([FAKE_IDENTIFIERS.StudyInstanceUID, '9.8.7.6.5', 'Sono^Grapher']));
    expect(isIdentifyingKeyword('SOPClassUID')).toBe(false);
    expect(isIdentifyingKeyword('AcquisitionDateTime')).toBe(true);
    expect(isIdentifyingKeyword('FrameTime')).toBe(false);
  });
});
