//! `trainer sample`: write a generated ERP extract ([`crate::sample`]) and say what was written.

use std::path::Path;
use std::time::Instant;

use crate::error::Result;
use crate::sample::{SampleSpec, write_sample};

pub fn execute(spec: &SampleSpec, out: &Path) -> Result<()> {
    let t = Instant::now();
    let s = write_sample(spec, out)?;
    println!(
        "wrote {} item rows, {} routing rows, {} work-order rows to {} in {:.2} s",
        s.item_rows,
        s.routing_rows,
        s.work_order_rows,
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
