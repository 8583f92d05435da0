//! How big a sheet and a cell of the export may be.

/// Sheet and cell limits of the export; the defaults are Excel's, smaller ones let
/// tests reach the overflow paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Data rows a sheet holds under its header before the next sheet starts.
    pub rows_per_sheet: u32,
    /// Characters (UTF-16 units, as Excel counts) a cell holds before it is cut.
    pub max_cell_chars: usize,
}

/// Excel's limits: 1 048 576 rows a sheet (one is the header), 32 767 characters a cell.
impl Default for ExportLimits {
    fn default() -> Self {
        Self {
            rows_per_sheet: 1_048_575,
            max_cell_chars: 32_767,
        }
    }
}

impl ExportLimits {
    /// Checks the limits: a sheet holds 1 to 1 048 575 data rows, a cell 64 to 32 767
    /// characters (room for the cut marker).
    pub fn validate(&self) -> Result<(), String> {
        let excel = Self::default();
        if self.rows_per_sheet == 0 || self.rows_per_sheet > excel.rows_per_sheet {
            return Err(format!(
                "export rows per sheet must be 1 to {}, got {}",
                excel.rows_per_sheet, self.rows_per_sheet
            ));
        }
        if self.max_cell_chars < 64 || self.max_cell_chars > excel.max_cell_chars {
            return Err(format!(
                "export cell limit must be 64 to {} characters, got {}",
                excel.max_cell_chars, self.max_cell_chars
            ));
        }
        Ok(())
    }
}
