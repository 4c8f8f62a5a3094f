/**
 * A small RFC 4180 CSV reader: quoted fields, doubled quotes, embedded commas
 * and newlines, CRLF. Enough for metadata.csv and user label files without a
 * dependency; rows keep their 1-based line number so errors can name them.
 */
export interface CsvRow {
  /** 1-based line number of the row's first line in the file (the header is line 1). */
  line: number;
  values: Record<string, string>;
}

export interface CsvTable {
  header: string[];
  rows: CsvRow[];
}

export class CsvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsvError';
  }
}

function parseRecords(text: string): { fields: string[]; line: number }[] {
  const records: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a UTF-8 BOM from spreadsheet exports
  const endRecord = () => {
    fields.push(field);
    // A blank line (one empty field) is not a record.
    if (!(fields.length === 1 && fields[0] === '')) records.push({ fields, line: recordLine });
    fields = [];
    field = '';
  };
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"' && field === '') {
      quoted = true;
    } else if (c === ',') {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      field += c;
    }
  }
  if (quoted) throw new CsvError(`Unterminated quoted field starting on line ${recordLine}.`);
  if (field !== '' || fields.length > 0) endRecord();
  return records;
}

/** Parses CSV text with a header row. Extra or missing trailing cells read as ''. */
export function parseCsv(text: string): CsvTable {
  const records = parseRecords(text);
  const head = records.shift();
  if (!head) throw new CsvError('The CSV file is empty: expected a header row.');
  const header = head.fields.map((h) => h.trim());
  const rows = records.map(({ fields, line }) => {
    const values: Record<string, string> = {};
    header.forEach((h, j) => {
      // The first of duplicate (or empty) column names wins; metadata.csv has an unnamed column.
      if (h !== '' && !(h in values)) values[h] = (fields[j] ?? '').trim();
    });
    return { line, values };
  });
  return { header, rows };
}
