/**
 * De-identification rules. sonomark copies nothing from a DICOM header into features,
 * results, reports or logs except the technical attributes of DicomImageHeader (an
 * allowlist: transfer syntax, modality, size, frames, photometric, bit depth, frame rate,
 * ultrasound region bounds) and the salted study/series pseudonyms. The B-mode crop also
 * keeps burned-in annotations out of the pixels the network sees.
 *
 * The denylist below (after PS3.15 Annex E, Basic Application Level Confidentiality Profile)
 * is what the tests search the outputs for: every value of these attributes, anywhere in the
 * data set (sequences included), must be absent from what sonomark writes.
 */
import type { NaturalizedDataset } from 'dcmjs';

export const IDENTIFYING_KEYWORDS: ReadonlySet<string> = new Set([
  'PatientName',
  'PatientID',
  'IssuerOfPatientID',
  'OtherPatientIDs',
  'OtherPatientNames',
  'PatientBirthName',
  'PatientMotherBirthName',
  'PatientBirthDate',
  'PatientBirthTime',
  'PatientAddress',
  'PatientTelephoneNumbers',
  'PatientAge',
  'PatientSex',
  'PatientSize',
  'PatientWeight',
  'MedicalRecordLocator',
  'EthnicGroup',
  'Occupation',
  'AdditionalPatientHistory',
  'PatientComments',
  'AccessionNumber',
  'StudyID',
  'StudyDescription',
  'SeriesDescription',
  'ReferringPhysicianName',
  'PerformingPhysicianName',
  'NameOfPhysiciansReadingStudy',
  'OperatorsName',
  'PhysiciansOfRecord',
  'RequestingPhysician',
  'InstitutionName',
  'InstitutionAddress',
  'InstitutionalDepartmentName',
  'StationName',
  'DeviceSerialNumber',
  'DeviceUID',
  'DetectorID',
  'ImageComments',
  'RequestAttributesSequence',
  'ContentCreatorName',
  'ProtocolName',
]);

/** UIDs that name a standard (a class or an encoding), not an instance: public, never identifying. */
const PUBLIC_UIDS = /^(SOPClassUID|ReferencedSOPClassUID|TransferSyntaxUID|MediaStorageSOPClassUID|.*ClassUID)$/;

/** Attributes whose value identifies: the denylist, every instance UID, and every date and time. */
export function isIdentifyingKeyword(keyword: string): boolean {
  if (IDENTIFYING_KEYWORDS.has(keyword)) return true;
  if (keyword.endsWith('UID')) return !PUBLIC_UIDS.test(keyword);
  return /(Date|Time|DateTime)$/.test(keyword) && keyword !== 'FrameTime';
}

/**
 * Every identifying value in a data set, as the strings it would appear as in text
 * (person names in their components too). Short values (under 4 characters, e.g. "M")
 * are left out: they occur in any text by chance.
 */
export function identifyingValues(dataset: NaturalizedDataset): string[] {
  const found = new Set<string>();
  const add = (v: unknown): void => {
    if (v === null || v === undefined) return;
    if (Array.isArray(v)) return v.forEach(add);
    if (typeof v === 'object') return Object.values(v as Record<string, unknown>).forEach(add);
    const s = String(v).replace(/\0/g, '').trim();
    if (s.length >= 4) {
      found.add(s);
      // Person names: "Family^Given" also appears as its parts.
      for (const part of s.split(/[\^=]/)) if (part.trim().length >= 4) found.add(part.trim());
    }
  };
  const walk = (ds: NaturalizedDataset): void => {
    for (const [keyword, value] of Object.entries(ds)) {
      if (keyword === 'PixelData' || keyword === '_vrMap') continue;
      if (isIdentifyingKeyword(keyword)) add(value);
      else if (Array.isArray(value)) {
        for (const item of value)
          if (item && typeof item === 'object' && !(item instanceof ArrayBuffer)) walk(item as NaturalizedDataset);
      }
    }
  };
  walk(dataset);
  return [...found];
}
