import { data } from 'dcmjs';
import '../../../core/dicom/header';

describe('core/dicom: dcmjs is silenced', () => {
  it('its named loggers (validation warnings can quote header values) print nothing once core/dicom is loaded', () => {
    // Prepare
    const spies = (['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((m) =>
      jest.spyOn(console, m).mockImplementation(() => {}),
    );
    try {
      // Act: an ambiguous VR makes dcmjs' "validation.dcmjs" logger complain
      data.DicomMetaDictionary.denaturalizeDataset({ RedPaletteColorLookupTableDescriptor: [256, 0, 16] });

      // Assess
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});
