//! `trainer sample`: the synthetic ERP generator.
//!
//! Writes the three ERP views as Parquet with exactly the columns and types of
//! `specs/erp_views.yaml`, plus `item_metadata.json`. Tests and benchmarks run on its output, so it
//! has to be as hard as the real data:
//!
//! * **Hidden routing structure.** An item's current routing is a function of its *routing key*:
//!   part type, material class, size band (after unit conversion) and seal family. Items that agree
//!   on those share a JOB_CD sequence. The key is not visible directly: it must be recovered from
//!   the informative columns (part type, item group/type, material codes, seal type codes,
//!   dimensions in mixed units).
//! * **Noise.** Some items deviate from their key's routing (an operation inserted, dropped or
//!   swapped), attributes are sometimes mis-keyed, and near-unique columns (drawing numbers,
//!   free-text specs) carry no routing signal at all.
//! * **Every pathology of the spec:** missing spelled `''`, NULL or `'nan'`; 0 and 9999 as
//!   unknown dimensions; units spelled MM/mm/INCH/inch/mmmm/INC/MM/IN/D/NA; stray leading,
//!   trailing and full-width (U+3000) spaces; Korean text; 84–100 % empty columns; duplicate item
//!   codes differing by case or spaces; a leading-space item code.
//!
//! Determinism: the output is a pure function of `(items, seed)`.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;

use crate::erp::{
    ITEM_VIEW, ROUTING_VIEW, WORK_ORDER_VIEW, item_schema, routing_schema, work_order_schema,
};
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_with;
use crate::parquet_io::write_parquet;
use crate::rng::Rng;

// ------------------------------------------------------------------------------------------------
// Vocabulary of the synthetic plant.

/// A process class: what kind of part it is and how it is made.
struct ProcessClass {
    part_prefix: &'static str,
    part_names: &'static [&'static str],
    grp1: (&'static str, &'static str),
    item_types: &'static [&'static str],
    acct: &'static str,
    unit: &'static str,
    /// Base operation codes in order.
    ops: &'static [&'static str],
    /// Share of items of this class that are bought in and have no routing.
    purchased: f64,
    share: f64,
}

const CLASSES: &[ProcessClass] = &[
    ProcessClass {
        part_prefix: "SFT",
        part_names: &["ROTATING FACE", "STATIONARY FACE", "SEAL RING"],
        grp1: ("SFC", "SEAL FACE"),
        item_types: &["M1", "M2"],
        acct: "반제품:M1",
        unit: "EA",
        ops: &["C10-1", "C20-1", "F20-3", "F40-1", "F61-1", "Q30-1"],
        purchased: 0.05,
        share: 0.18,
    },
    ProcessClass {
        part_prefix: "GLD",
        part_names: &["GLAND-GENERAL", "GLAND-API", "GLAND PLATE"],
        grp1: ("SHD", "HARDWARE"),
        item_types: &["M1", "P4"],
        acct: "반제품:M1",
        unit: "EA",
        ops: &["C10-1", "C20-1", "C25-2", "D10-1", "Q30-1", "E10-1"],
        purchased: 0.05,
        share: 0.16,
    },
    ProcessClass {
        part_prefix: "SLV",
        part_names: &["SLEEVE", "SHAFT SLEEVE", "COLLAR"],
        grp1: ("SHD", "HARDWARE"),
        item_types: &["M1", "P4"],
        acct: "반제품:M1",
        unit: "EA",
        ops: &["C10-1", "C20-1", "F20-1", "Q30-1"],
        purchased: 0.05,
        share: 0.14,
    },
    ProcessClass {
        part_prefix: "BOM",
        part_names: &[
            "M/SEAL BOM",
            "M/SEAL BOM-API",
            "M/SEAL BOM-QUENCH",
            "M/SEAL BOM-FLUSH",
        ],
        grp1: ("D", "DRAWING ITEM"),
        item_types: &["SA", "SB"],
        acct: "제품",
        unit: "SET",
        ops: &["A01-1", "A01-2", "A10-2", "A20-3", "Q30-2", "K10-1"],
        purchased: 0.02,
        share: 0.16,
    },
    ProcessClass {
        part_prefix: "KIT",
        part_names: &["REP KIT/SPARE PARTS", "REP KIT/SPARE PARTS-API"],
        grp1: ("SEC", "SEAL ETC"),
        item_types: &["SA", "C4"],
        acct: "제품",
        unit: "SET",
        ops: &["A01-1", "A10-1", "K10-1"],
        purchased: 0.05,
        share: 0.08,
    },
    ProcessClass {
        part_prefix: "ORG",
        part_names: &["O-RING-API", "O-RING-TYPE B", "O-RING-FLUSH", "GASKET"],
        grp1: ("SEC", "SEAL ETC"),
        item_types: &["P1", "P4"],
        acct: "부품류",
        unit: "EA",
        ops: &["B10-1", "Q30-1"],
        purchased: 0.70,
        share: 0.14,
    },
    ProcessClass {
        part_prefix: "RES",
        part_names: &["RESERVOIR", "SUPPLY TANK", "COOLER"],
        grp1: ("SSY", "SEAL SYSTEM"),
        item_types: &["SB", "M2"],
        acct: "반제품:M2",
        unit: "EA",
        ops: &["W10-1", "W20-2", "A10-2", "A20-1", "P10-1", "K10-1"],
        purchased: 0.05,
        share: 0.08,
    },
    ProcessClass {
        part_prefix: "RAW",
        part_names: &["ROUND BAR", "PLATE", "CASTING"],
        grp1: ("RAW", "원소재"),
        item_types: &["R1", "R2"],
        acct: "원소재",
        unit: "KG",
        ops: &["C05-1", "Q10-1"],
        purchased: 0.60,
        share: 0.06,
    },
];

/// Material classes: the routing reacts to the class, the ERP shows only codes and descriptions.
struct MaterialClass {
    descs: &'static [&'static str],
    code_prefix: &'static str,
    /// Operations this material adds after machining (heat treatment, coating, …).
    extra_ops: &'static [&'static str],
    raw_kind: &'static str,
    share: f64,
}

const MATERIALS: &[MaterialClass] = &[
    MaterialClass {
        descs: &["316", "STS316", "316L", "STS316 GR.B"],
        code_prefix: "M",
        extra_ops: &[],
        raw_kind: "B.",
        share: 0.34,
    },
    MaterialClass {
        descs: &["304", "STS304"],
        code_prefix: "N",
        extra_ops: &[],
        raw_kind: "B.",
        share: 0.14,
    },
    MaterialClass {
        descs: &["SILICON CARBIDE", "SIC-40", "TUNGSTEN CARBIDE"],
        code_prefix: "Y",
        extra_ops: &["F10-2", "외주8-1"],
        raw_kind: "CP",
        share: 0.16,
    },
    MaterialClass {
        descs: &["CARBON NO.5", "CARBON KR3", "RESIN CARBON"],
        code_prefix: "K",
        extra_ops: &["F10-1"],
        raw_kind: "CR",
        share: 0.12,
    },
    MaterialClass {
        descs: &["HASTELLOY C276", "HASTELLOY C276 SPRING", "ALLOY 20"],
        code_prefix: "H",
        extra_ops: &["외주2-3", "Q40-1"],
        raw_kind: "P3",
        share: 0.10,
    },
    MaterialClass {
        descs: &["MULTIPLE MATERIALS", "MULTIPLE MATERIALS H/T"],
        code_prefix: "Z",
        extra_ops: &["외주02-1"],
        raw_kind: "BH",
        share: 0.14,
    },
];

fn op_name(code: &str) -> &'static str {
    match code.get(..1).unwrap_or("") {
        "A" if code.starts_with("A01") => "KITTING 부품준비",
        "A" if code.starts_with("A20") => "PRESSURE TEST 가압시험",
        "A" => "ASSEMBLY 조립",
        "B" => "MOLDING 성형",
        "C" if code.starts_with("C05") => "SAWING 절단",
        "C" if code.starts_with("C10") => "CUTTING 절단",
        "C" => "TURNING CNC 선반",
        "D" => "DRILLING 드릴",
        "E" => "LASER MARKING",
        "F" if code.starts_with("F10") => "HEAT TREATMENT 열처리",
        "F" if code.starts_with("F20") => "GRINDING 연삭",
        "F" if code.starts_with("F40") => "LAPPING 래핑",
        "F" => "POLISHING 폴리싱",
        "K" => "PACKING 포장",
        "P" => "PAINTING 도장",
        "Q" => "INSPECTION 검사",
        "W" => "WELDING 용접",
        _ => "OUTSOURCED 외주가공",
    }
}

fn resource_for(code: &str, large: bool) -> (&'static str, &'static str) {
    match code.get(..1).unwrap_or("") {
        "A" | "K" => ("ASY-WC1A", "ASY 작업장 WC1A"),
        "B" => ("MLD-01", "MLD 작업장 01"),
        "C" if large => ("MTM-02", "MTM 대형선반 02"),
        "C" => ("CNC-01", "CNC 작업장 01"),
        "D" => ("DRL-01", "DRL 작업장 01"),
        "E" => ("MRK-01", "MRK 작업장 01"),
        "F" => ("GRD-01", "GRD 작업장 01"),
        "P" => ("PNT-01", "PNT 작업장 01"),
        "Q" => ("INS-WC2", "INS 작업장 WC2"),
        "W" => ("WLD-01", "WLD 작업장 01"),
        _ => ("OUT-01", "외주 협력사"),
    }
}

fn is_outsourced(code: &str) -> bool {
    code.contains("외주")
}

/// The part-type codes of the plant: `n_per_class` per class, with names and a routing variant.
struct PartType {
    code: String,
    name: String,
    class: usize,
    /// 0..3: which variant of the class's operations this part type uses.
    variant: u8,
}

fn make_part_types(rng: &mut Rng, n_per_class: usize) -> Vec<PartType> {
    let mut out = Vec::new();
    let mut serial = 11;
    for (ci, c) in CLASSES.iter().enumerate() {
        for k in 0..n_per_class {
            let name_base = c.part_names[k % c.part_names.len()];
            let name = if k < c.part_names.len() {
                name_base.to_string()
            } else {
                format!(
                    "{name_base}-{}",
                    ["STD", "SPECIAL", "HT", "LARGE", "API"][k % 5]
                )
            };
            let code = match rng.below(3) {
                0 => format!("{}{}", c.part_prefix, k),
                1 => format!("{serial}"),
                _ => format!("{}#{}", serial % 60, k % 3 + 1),
            };
            serial += 7;
            out.push(PartType {
                code,
                name,
                class: ci,
                variant: (rng.below(4)) as u8,
            });
        }
    }
    out
}

/// One generated item and the hidden truth behind it.
struct Item {
    code: String,
    part: usize,
    material_class: usize,
    material_code: String,
    material_desc: &'static str,
    /// Size in mm (None = unknown in the ERP).
    od_mm: Option<f64>,
    seal_family: usize,
    seal_code: String,
    routing_key_ops: Vec<&'static str>,
    purchased: bool,
    large: bool,
}

/// Size bands (mm of outer diameter) that change the routing.
fn size_band(od_mm: f64) -> u8 {
    if od_mm < 60.0 {
        0
    } else if od_mm < 150.0 {
        1
    } else {
        2
    }
}

/// The routing of a routing key: class ops, specialised by part variant, material, size band and
/// seal family. This is the structure a good embedding must recover.
fn routing_for(
    pt: &PartType,
    mat: &MaterialClass,
    band: u8,
    seal_family: usize,
    profile: Profile,
) -> Vec<&'static str> {
    match profile {
        Profile::PlantA => routing_a(pt, mat, band, seal_family),
        Profile::PlantB => routing_b(pt, mat, band, seal_family),
    }
}

/// Plant B's routing: process class, material class (hard materials are ground instead of
/// turned), four size bands, and the seal family's inspection on every part with a routing; the
/// part-type variant matters for one part type in four. (Plant B also has 20 % deviating items,
/// some twice, twice as many part types and material and seal codes, and sizes more often
/// known: see `write_sample`.)
fn routing_b(
    pt: &PartType,
    mat: &MaterialClass,
    band: u8,
    seal_family: usize,
) -> Vec<&'static str> {
    // The variant only matters for one part type in four (code-derived, not the variant itself).
    let variant = if pt.code.len().is_multiple_of(4) {
        pt.variant
    } else {
        0
    };
    let base = PartType {
        code: pt.code.clone(),
        name: pt.name.clone(),
        class: pt.class,
        variant,
    };
    let mut ops = routing_a(&base, mat, 0, 0);
    // Hard materials are ground, not turned, after roughing.
    if mat.raw_kind == "CP" || mat.raw_kind == "CR" {
        for op in ops.iter_mut() {
            *op = match *op {
                "C20-1" | "C20-2" => "F30-1",
                "F20-3" | "F20-1" => "F30-2",
                o => o,
            };
        }
    }
    let machined = ops.iter().any(|o| o.starts_with('C') || o.starts_with('F'));
    // Four size bands.
    if machined && band >= 1 {
        ops.insert(1, ["C15-1", "C15-2", "C15-3"][(band - 1).min(2) as usize]);
    }
    if band >= 3 {
        ops.insert(ops.len().saturating_sub(1), "Q35-1");
    }
    // Every part with a routing gets its seal family's inspection.
    if !ops.is_empty() {
        const FAMILY_QC: [&str; 7] = [
            "Q50-1", "Q50-2", "Q51-1", "Q51-2", "Q52-1", "Q52-2", "Q53-1",
        ];
        ops.insert(ops.len().saturating_sub(1), FAMILY_QC[seal_family % 7]);
    }
    ops
}

/// Plant A's routing: process class, part-type variant, material class, three size bands and,
/// for assemblies, the seal family (12 % of items then deviate by one operation).
fn routing_a(
    pt: &PartType,
    mat: &MaterialClass,
    band: u8,
    seal_family: usize,
) -> Vec<&'static str> {
    let class = &CLASSES[pt.class];
    let mut ops: Vec<&'static str> = class.ops.to_vec();
    // Part-type variant: swap one operation for a sibling code, or add a finishing step.
    const SIBLINGS: &[(&str, &str)] = &[
        ("C20-1", "C20-2"),
        ("F20-3", "F20-1"),
        ("A10-2", "A10-3"),
        ("Q30-1", "Q30-3"),
        ("W20-2", "W20-1"),
        ("B10-1", "B10-2"),
        ("C05-1", "C05-2"),
    ];
    match pt.variant {
        1 => {
            for op in ops.iter_mut() {
                if let Some((_, s)) = SIBLINGS.iter().find(|(a, _)| a == op) {
                    *op = s;
                    break;
                }
            }
        }
        2 => ops.insert(ops.len().saturating_sub(1), "E10-1"),
        3 if ops.len() > 3 => {
            ops.remove(1);
        }
        _ => {}
    }
    // Material: heat treatment / coating / outsourced plating after the machining steps.
    if CLASSES[pt.class].part_prefix != "ORG" && CLASSES[pt.class].part_prefix != "KIT" {
        let pos = ops.len().saturating_sub(1);
        for (k, op) in mat.extra_ops.iter().enumerate() {
            ops.insert(pos + k, op);
        }
    }
    // Size: large parts get a rough-turning step on the big lathe, very large ones a balance check.
    if band >= 1 && ops.iter().any(|o| o.starts_with('C')) {
        ops.insert(1, "C15-1");
    }
    if band == 2 {
        ops.insert(ops.len().saturating_sub(1), "Q35-1");
    }
    // Seal family: assemblies are pressure-tested differently per family.
    if ops.contains(&"A20-3") || ops.contains(&"A20-1") {
        let test = ["A20-3", "A20-1", "A20-5"][seal_family % 3];
        for op in ops.iter_mut() {
            if op.starts_with("A20") {
                *op = test;
            }
        }
    }
    ops
}

/// Noise on top of the key's routing: one operation inserted, dropped or swapped.
fn deviate(rng: &mut Rng, ops: &mut Vec<&'static str>) {
    const POOL: &[&str] = &[
        "Q30-1",
        "E10-1",
        "F61-1",
        "D10-1",
        "C25-2",
        "외주8-1",
        "A10-1",
        "P10-1",
    ];
    match rng.below(3) {
        0 => {
            let at = rng.below(ops.len() + 1);
            ops.insert(at, *rng.pick(POOL));
        }
        1 if ops.len() > 2 => {
            let at = rng.below(ops.len());
            ops.remove(at);
        }
        _ => {
            let at = rng.below(ops.len());
            ops[at] = *rng.pick(POOL);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Small helpers that reproduce the ERP's habits.

/// How an empty text value is spelled in this column: '' most often, else NULL or 'nan'.
fn missing_text(rng: &mut Rng, b: &mut StringBuilder, p_null: f64, p_nan: f64) {
    let x = rng.f64();
    if x < p_null {
        b.append_null();
    } else if x < p_null + p_nan {
        b.append_value("nan");
    } else {
        b.append_value("");
    }
}

/// Stray spaces: a leading or trailing ASCII space, or a trailing full-width space.
fn with_stray_space(rng: &mut Rng, s: &str, p: f64) -> String {
    if !rng.chance(p) {
        return s.to_string();
    }
    match rng.below(3) {
        0 => format!(" {s}"),
        1 => format!("{s} "),
        _ => format!("{s}\u{3000}"),
    }
}

fn inch_spelling(rng: &mut Rng) -> &'static str {
    const S: [&str; 6] = ["INCH", "INCH", "INCH", "inch", "INC", "in"];
    S[rng.below(S.len())]
}

fn mm_spelling(rng: &mut Rng) -> &'static str {
    const S: [&str; 6] = ["MM", "MM", "MM", "MM", "mm", "mmmm"];
    S[rng.below(S.len())]
}

/// Deterministic generator configuration.
pub struct SampleSpec {
    pub items: usize,
    pub seed: u64,
    pub profile: Profile,
}

/// Which hidden plant the generator builds. Both write the same three views with the same
/// pathologies; what drives a routing differs (docs/quality.md, "Data profiles"), so that a quality
/// decision can be checked on a plant it was not made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Profile {
    // The default plant: see `routing_a`.
    PlantA,
    // Routings driven by other columns, noisier, rarer levels: see `routing_b`.
    PlantB,
}

/// Row counts of what was written.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SampleSummary {
    pub item_rows: usize,
    pub routing_rows: usize,
    pub work_order_rows: usize,
}

/// Generates the data set and writes it to `out`. The stages draw from one seeded stream in a
/// fixed order (catalogue, items, item view, routings), so the same spec gives the same bytes.
pub fn write_sample(spec: &SampleSpec, out: &Path) -> Result<SampleSummary> {
    if spec.items == 0 {
        return Err(Error::usage("--items must be at least 1"));
    }
    fs::create_dir_all(out).map_err(|e| Error::io(out, "create the output directory", e))?;
    let mut rng = Rng::derive(spec.seed, "sample");
    let cat = Catalogue::draw(&mut rng, spec.items, spec.profile);
    let items = draw_items(&mut rng, spec.items, &cat, spec.profile);

    let (item_batch, volumes) = item_view(&mut rng, &items, &cat)?;
    let item_rows = item_batch.num_rows();
    write_parquet(&out.join(format!("{ITEM_VIEW}.parquet")), &item_batch)?;

    let (routing_batch, wo_batch) = build_routings(&mut rng, &items, &cat.parts)?;
    let routing_rows = routing_batch.num_rows();
    let work_order_rows = wo_batch.num_rows();
    write_parquet(&out.join(format!("{ROUTING_VIEW}.parquet")), &routing_batch)?;
    write_parquet(&out.join(format!("{WORK_ORDER_VIEW}.parquet")), &wo_batch)?;

    write_item_metadata(out, spec, &volumes)?;
    Ok(SampleSummary {
        item_rows,
        routing_rows,
        work_order_rows,
    })
}

/// The plant's catalogue: part types, material codes and seal codes.
struct Catalogue {
    parts: Vec<PartType>,
    material_codes: Vec<(usize, String)>,
    seal_codes: Vec<String>,
}

impl Catalogue {
    fn draw(rng: &mut Rng, n: usize, profile: Profile) -> Catalogue {
        let b = profile == Profile::PlantB;
        // Plant B: twice the levels of part types, material and seal codes.
        let more = if b { 2 } else { 1 };
        let per_class = ((6 + n / 6000) * more).min(53 * more);
        let parts = make_part_types(rng, per_class);
        let n_material_codes = ((24 + n / 300) * more).min(1167 * more);
        let material_codes: Vec<(usize, String)> = (0..n_material_codes)
            .map(|k| {
                let mc = rng.weighted(&MATERIALS.iter().map(|m| m.share).collect::<Vec<_>>());
                let code = format!(
                    "{}{:03}{}{}",
                    MATERIALS[mc].code_prefix,
                    k,
                    (b'A' + rng.below(26) as u8) as char,
                    (b'A' + rng.below(26) as u8) as char
                );
                (mc, code)
            })
            .collect();
        let n_seal_codes = ((30 + n / 400) * more).min(873 * more);
        let seal_codes: Vec<String> = (0..n_seal_codes)
            .map(|k| {
                if k % 3 == 0 {
                    format!("{}", 1_002_000 + k * 37)
                } else if k % 3 == 1 {
                    format!("{}", 100 + k * 13)
                } else {
                    format!("X{}", 10 + k)
                }
            })
            .collect();
        Catalogue {
            parts,
            material_codes,
            seal_codes,
        }
    }
}

/// The items and their hidden truth (part type, material, size, seal family, the operations of
/// their routing key).
fn draw_items(rng: &mut Rng, n: usize, cat: &Catalogue, profile: Profile) -> Vec<Item> {
    let b = profile == Profile::PlantB;
    let (parts, material_codes, seal_codes) = (&cat.parts, &cat.material_codes, &cat.seal_codes);
    let class_shares: Vec<f64> = CLASSES.iter().map(|c| c.share).collect();
    let mut items: Vec<Item> = Vec::with_capacity(n);
    for i in 0..n {
        let class = rng.weighted(&class_shares);
        let class_parts: Vec<usize> = (0..parts.len())
            .filter(|&p| parts[p].class == class)
            .collect();
        // Zipf-like popularity of part types within a class.
        let w: Vec<f64> = (0..class_parts.len())
            .map(|k| 1.0 / (k as f64 + 1.5))
            .collect();
        let part = class_parts[rng.weighted(&w)];
        let (mc, material_code) = {
            let k = rng.below(material_codes.len());
            material_codes[k].clone()
        };
        let m = &MATERIALS[mc];
        let material_desc = *rng.pick(m.descs);
        let od_mm = match CLASSES[class].part_prefix {
            "ORG" | "KIT" | "RAW" if rng.chance(if b { 0.4 } else { 0.6 }) => None,
            _ if rng.chance(if b { 0.3 } else { 0.45 }) => None,
            _ => Some((rng.normal() * 0.7 + 4.3).exp().clamp(8.0, 900.0)),
        };
        let seal_idx = rng.below(seal_codes.len());
        let seal_family = seal_idx % 7;
        let band = match (od_mm, b) {
            (None, _) => 0,
            (Some(od), false) => size_band(od),
            (Some(od), true) => [40.0, 100.0, 250.0].iter().filter(|&&t| od >= t).count() as u8,
        };
        let mut ops = routing_for(&parts[part], m, band, seal_family, profile);
        let purchased = rng.chance(CLASSES[class].purchased);
        // Plant A: 12 % of items deviate from the routing of their key; plant B: 20 %, a
        // quarter of those twice.
        if rng.chance(if b { 0.20 } else { 0.12 }) {
            deviate(rng, &mut ops);
            if b && rng.chance(0.25) {
                deviate(rng, &mut ops);
            }
        }
        let code = match i % 5 {
            0 => format!("H{:06}DB", i),
            1 => format!("3H{:05}ZZ", i),
            2 => format!("00{:08}", 50_000_000 + i),
            3 => format!("K{:06}-GS", i),
            _ => format!("B{:05}JNC", i),
        };
        items.push(Item {
            code,
            part,
            material_class: mc,
            material_code,
            material_desc,
            od_mm,
            seal_family,
            seal_code: seal_codes[seal_idx].clone(),
            routing_key_ops: ops,
            purchased,
            large: band >= 1,
        });
    }
    items
}

/// Production and sales volume per written ITEM_CD.
type Volumes = Vec<(String, u64, u64)>;

/// The item view, with its pathologies (duplicate rows, missing spellings, stray spaces,
/// sentinels, unit spellings), and each written ITEM_CD's volumes.
/// The item view's column builders: text and number columns, each kind in its own vector.
struct Builders {
    sb: Vec<StringBuilder>,
    fb: Vec<Float64Builder>,
    /// Column index -> (is_float, position in its builder vec).
    layout: Vec<(bool, usize)>,
}

impl Builders {
    fn new(schema: &Schema, rows: usize) -> Builders {
        let (mut sb, mut fb) = (Vec::new(), Vec::new());
        let layout = schema
            .fields()
            .iter()
            .map(|fld| {
                if fld.data_type() == &DataType::Float64 {
                    fb.push(Float64Builder::with_capacity(rows));
                    (true, fb.len() - 1)
                } else {
                    sb.push(StringBuilder::with_capacity(rows, rows * 8));
                    (false, sb.len() - 1)
                }
            })
            .collect();
        Builders { sb, fb, layout }
    }

    fn text(&mut self, k: usize) -> &mut StringBuilder {
        &mut self.sb[k]
    }

    fn num(&mut self, k: usize) -> &mut Float64Builder {
        &mut self.fb[k]
    }

    fn finish(mut self, schema: Arc<Schema>) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.layout.len());
        for &(is_f, k) in &self.layout {
            if is_f {
                arrays.push(Arc::new(self.fb[k].finish()));
            } else {
                arrays.push(Arc::new(self.sb[k].finish()));
            }
        }
        RecordBatch::try_new(schema, arrays)
            .map_err(|e| Error::internal(format!("building the item batch: {e}")))
    }
}

/// Where each item-view column sits in its [`Builders`] vector.
struct ItemCols {
    c_item: usize,
    c_pt: usize,
    c_pnm: usize,
    c_suffix: usize,
    c_spec: usize,
    c_nm: usize,
    c_addspec: usize,
    c_mat: usize,
    c_matdesc: usize,
    c_acct: usize,
    c_type: usize,
    c_unit: usize,
    c_grp1: usize,
    c_grp1nm: usize,
    c_std: usize,
    c_g1: usize,
    c_g2: usize,
    c_g3: usize,
    c_draw: usize,
    c_rev: usize,
    c_sheet: usize,
    c_use: usize,
    c_nmeng: usize,
    c_odu: usize,
    c_stg: usize,
    c_insc: usize,
    c_insu: usize,
    c_midc: usize,
    c_midu: usize,
    c_outc: usize,
    c_outu: usize,
    c_rk: usize,
    c_rknm: usize,
    f_od: usize,
    f_id: usize,
    f_th: usize,
    f_rcw: usize,
    f_rccw: usize,
    f_ins: usize,
    f_mid: usize,
    f_out: usize,
}

impl ItemCols {
    fn new(schema: &Schema, b: &Builders) -> ItemCols {
        let col = |name: &str| schema.index_of(name).map(|i| b.layout[i].1).unwrap();
        ItemCols {
            c_item: col("ITEM_CD"),
            c_pt: col("PART_TYPE"),
            c_pnm: col("PartNm"),
            c_suffix: col("ITEM_SUFFIX"),
            c_spec: col("ITEM_SPEC"),
            c_nm: col("ITEM_NM"),
            c_addspec: col("ADDITIONAL_SPEC"),
            c_mat: col("ITEM_MATERIAL"),
            c_matdesc: col("MATERIAL_DESC"),
            c_acct: col("ITEM_ACCT"),
            c_type: col("ITEM_TYPE"),
            c_unit: col("ITEM_UNIT"),
            c_grp1: col("ITEM_GRP1"),
            c_grp1nm: col("ITEM_GRP1NM"),
            c_std: col("STANDARD_YN"),
            c_g1: col("GROUP1"),
            c_g2: col("GROUP2"),
            c_g3: col("GROUP3"),
            c_draw: col("DRAW_NO"),
            c_rev: col("DRAW_REV"),
            c_sheet: col("DRAW_SHEET_NO"),
            c_use: col("DRAW_USE"),
            c_nmeng: col("ITEM_NM_ENG"),
            c_odu: col("OUTDIAMETER_UNIT"),
            c_stg: col("SealTypeGrup"),
            c_insc: col("IN_SEALTYPE_CD"),
            c_insu: col("IN_SEALSIZE_UOM"),
            c_midc: col("MID_SEALTYPE_CD"),
            c_midu: col("MID_SEALSIZE_UOM"),
            c_outc: col("OUT_SEALTYPE_CD"),
            c_outu: col("OUT_SEALSIZE_UOM"),
            c_rk: col("RAW_MATL_KIND"),
            c_rknm: col("RAW_MATL_KINDNM"),
            f_od: col("OUTDIAMETER"),
            f_id: col("INDIAMETER"),
            f_th: col("OUTTHICKNESS"),
            f_rcw: col("ROTATE_CLOCKWISE"),
            f_rccw: col("ROTATE_CTRCLOCKWISE"),
            f_ins: col("IN_SEALSIZE"),
            f_mid: col("MID_SEALSIZE"),
            f_out: col("OUT_SEALSIZE"),
        }
    }
}

/// What one item row is drawn from.
#[derive(Clone, Copy)]
struct Row<'a> {
    it: &'a Item,
    pt: &'a PartType,
    class: &'a ProcessClass,
    /// The part type the row shows (4 % carry another one: data-entry noise).
    shown_part: &'a PartType,
    /// 1 for the second row of a duplicated item.
    copy: usize,
    i: usize,
    n: usize,
    seal_codes: &'a [String],
}

fn item_view(rng: &mut Rng, items: &[Item], cat: &Catalogue) -> Result<(RecordBatch, Volumes)> {
    let n = items.len();
    let (parts, seal_codes) = (&cat.parts, &cat.seal_codes);
    let item_schema = Arc::new(item_schema());
    let n_dups = if n >= 20 { (n / 700).max(1) } else { 0 };
    let mut b = Builders::new(&item_schema, n + n_dups);
    let k = ItemCols::new(&item_schema, &b);

    let junk_parts: Vec<usize> = (0..parts.len()).collect();
    let mut volumes: Vec<(String, u64, u64)> = Vec::with_capacity(n + n_dups);
    let dup_every = n.checked_div(n_dups).unwrap_or(usize::MAX);
    for (i, it) in items.iter().enumerate() {
        let copies = if n_dups > 0 && i % dup_every == dup_every / 2 {
            2
        } else {
            1
        };
        for copy in 0..copies {
            let pt = &parts[it.part];
            let class = &CLASSES[pt.class];
            // Mis-keyed attributes: 4 % of rows carry another part type (data-entry noise).
            let shown_part = if rng.chance(0.04) {
                &parts[*rng.pick(&junk_parts)]
            } else {
                pt
            };
            let row = Row {
                it,
                pt,
                class,
                shown_part,
                copy,
                i,
                n,
                seal_codes,
            };
            item_identity(rng, &mut b, &k, &row);
            item_classification(rng, &mut b, &k, &row);
            item_drawing(rng, &mut b, &k);
            item_dimensions(rng, &mut b, &k, &row);
            item_seals(rng, &mut b, &k, &row);
            if copy == 0 {
                // Volumes: log-normal, many zero; used for item weights.
                let base = if rng.chance(0.3) {
                    0.0
                } else {
                    (rng.normal() * 1.3 + 2.5).exp()
                };
                let prod = base.round() as u64;
                let sales = (base * (0.2 + rng.f64())).round() as u64;
                volumes.push((it.code.trim().to_string(), prod, sales));
            }
        }
    }
    Ok((b.finish(item_schema)?, volumes))
}

/// One item row's code (a duplicate row differs by case or spaces), part type and name, suffix,
/// specs and name.
fn item_identity(rng: &mut Rng, b: &mut Builders, k: &ItemCols, row: &Row<'_>) {
    let Row {
        it,
        shown_part,
        copy,
        i,
        n,
        ..
    } = *row;
    let code = if copy == 1 {
        // Same item again, differing only by case or surrounding spaces.
        if rng.chance(0.5) {
            it.code.to_lowercase()
        } else {
            format!("{} ", it.code)
        }
    } else if i == n / 3 {
        format!(" {}", it.code)
    } else {
        it.code.clone()
    };
    b.text(k.c_item).append_value(&code);
    b.text(k.c_pt)
        .append_value(with_stray_space(rng, &shown_part.code, 0.02));
    b.text(k.c_pnm).append_value(&shown_part.name);
    if rng.chance(0.16) {
        b.text(k.c_suffix)
            .append_value(*rng.pick(&["KIT", "R", "N", "HCV", "K", "S"]));
    } else {
        missing_text(rng, b.text(k.c_suffix), 0.02, 0.0);
    }
    // Free-text spec: near-unique, no routing signal beyond what size already says.
    match rng.below(10) {
        0..=2 => missing_text(rng, b.text(k.c_spec), 0.0, 0.02),
        3 | 4 => b.text(k.c_spec).append_value("0"),
        5 => b.text(k.c_spec).append_value(format!(
            "VD1-{}gal-316L-({:02}-Coil)-FnlAsy",
            rng.below(5) + 1,
            rng.below(60)
        )),
        _ => b.text(k.c_spec).append_value(format!(
            "{} U {} X",
            rng.below(400) + 1,
            if rng.chance(0.3) {
                "K".to_string()
            } else {
                (rng.below(90) + 1).to_string()
            }
        )),
    }
    if rng.chance(0.0001) {
        b.text(k.c_nm).append_null();
    } else {
        b.text(k.c_nm)
            .append_value(format!("{} {}", it.material_desc, shown_part.name));
    }
    match rng.below(10) {
        0 | 1 => missing_text(rng, b.text(k.c_addspec), 0.0, 0.0),
        2 | 3 => b.text(k.c_addspec).append_value("(표준설계)"),
        4 => b.text(k.c_addspec).append_value("0"),
        5 => b
            .text(k.c_addspec)
            .append_value(format!("QBQ-{}", rng.below(3000))),
        _ => b.text(k.c_addspec).append_value(format!(
            "Gasket-GT-({}-{})",
            rng.pick(&["PTFE", "SIC", "MULTI", "EPDM"]),
            rng.below(80)
        )),
    }
}

/// One item row's material, account, type, unit, groups and standard flag.
fn item_classification(rng: &mut Rng, b: &mut Builders, k: &ItemCols, row: &Row<'_>) {
    let Row { it, pt, class, .. } = *row;
    b.text(k.c_mat).append_value(&it.material_code);
    if rng.chance(0.0036) {
        b.text(k.c_matdesc).append_null();
    } else {
        b.text(k.c_matdesc).append_value(it.material_desc);
    }
    b.text(k.c_acct).append_value(if rng.chance(0.05) {
        "저장품"
    } else {
        class.acct
    });
    if rng.chance(0.04) {
        missing_text(rng, b.text(k.c_type), 0.1, 0.0);
    } else {
        b.text(k.c_type).append_value(*rng.pick(class.item_types));
    }
    let unit = match class.unit {
        "KG" if rng.chance(0.4) => *rng.pick(&["MM", "mm"]),
        u => u,
    };
    b.text(k.c_unit).append_value(unit);
    if rng.chance(0.023) {
        missing_text(rng, b.text(k.c_grp1), 0.0, 0.0);
    } else {
        b.text(k.c_grp1).append_value(class.grp1.0);
    }
    match rng.below(100) {
        0..=5 => b.text(k.c_grp1nm).append_null(),
        6 => b.text(k.c_grp1nm).append_value("ddd"),
        _ => b.text(k.c_grp1nm).append_value(class.grp1.1),
    }
    if rng.chance(0.0007) {
        missing_text(rng, b.text(k.c_std), 0.5, 0.0);
    } else {
        b.text(k.c_std)
            .append_value(*rng.pick(&["N", "N", "N", "Y", "Y", "I", "S", "C"]));
    }
    // GROUP1/2: custom classification, correlated with part type, with trailing junk.
    match rng.below(100) {
        0..=3 => b.text(k.c_g1).append_null(),
        4..=10 => b.text(k.c_g1).append_value(""),
        _ => {
            let g = format!(
                "{}{}-{}",
                ["AA", "P", "Q", "A"][pt.class % 4],
                10 + (it.part * 7 + rng.below(3)) % 50,
                ["QBQ", "API", "Gld", "Stat", "SL-125", "Tank"][pt.class % 6]
            );
            let g = match rng.below(8) {
                0 => format!("{g} -"),
                1 => format!("{g} "),
                2 => format!("{g}/QBQ"),
                _ => g,
            };
            b.text(k.c_g1).append_value(g)
        }
    }
    match rng.below(100) {
        0..=3 => b.text(k.c_g2).append_null(),
        4..=8 => b.text(k.c_g2).append_value(""),
        _ => b.text(k.c_g2).append_value(format!(
            "{}{}-{}",
            ["A", "P", "Q", "S"][it.material_class % 4],
            10 + it.material_class * 7 + rng.below(4),
            ["X", "B3", "C1", ""][rng.below(4)]
        )),
    }
    if rng.chance(0.0094) {
        b.text(k.c_g3)
            .append_value(*rng.pick(&["syc", "csy", "csy0708"]));
    } else {
        b.text(k.c_g3).append_null();
    }
}

/// One item row's drawing number, revision and sheet: near-unique, no routing signal.
fn item_drawing(rng: &mut Rng, b: &mut Builders, k: &ItemCols) {
    // Drawing numbers: near-unique, no routing signal.
    match rng.below(100) {
        0..=2 => b.text(k.c_draw).append_null(),
        3..=23 => b.text(k.c_draw).append_value(""),
        _ => b.text(k.c_draw).append_value(format!(
            "{}-{}",
            rng.pick(&["1K", "2K", "A", "DWG"]),
            10_000 + rng.below(90_000)
        )),
    }
    match rng.below(100) {
        0..=1 => b.text(k.c_rev).append_null(),
        2..=25 => b.text(k.c_rev).append_value(""),
        26..=55 => b.text(k.c_rev).append_value("-"),
        _ => b
            .text(k.c_rev)
            .append_value(*rng.pick(&["0", "1", "2", "A", "B", "B6", "C"])),
    }
    match rng.below(100) {
        0..=1 => b.text(k.c_sheet).append_null(),
        2..=5 => b.text(k.c_sheet).append_value(""),
        _ => b
            .text(k.c_sheet)
            .append_value((1 + rng.below(3) * rng.below(3)).to_string()),
    }
    b.text(k.c_use).append_null();
    b.text(k.c_nmeng).append_null();
}

/// One item row's dimensions and their unit, and the rotation codes.
fn item_dimensions(rng: &mut Rng, b: &mut Builders, k: &ItemCols, row: &Row<'_>) {
    let Row { it, .. } = *row;
    // Dimensions: unknown as 0 (or, rarely, 9999); the unit column is often empty and
    // spelled in many ways. Items measured in inch carry inch values.
    match it.od_mm {
        Some(od) => {
            let inch = rng.chance(0.06);
            let scale = if inch { 1.0 / 25.4 } else { 1.0 };
            let id = od * (0.55 + 0.2 * rng.f64());
            let th = (od * (0.12 + 0.1 * rng.f64())).max(2.0);
            let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
            if rng.chance(0.01) {
                b.num(k.f_od).append_value(9999.0);
            } else {
                b.num(k.f_od).append_value(r3(od * scale));
            }
            b.num(k.f_id)
                .append_value(if rng.chance(0.1) { 0.0 } else { r3(id * scale) });
            b.num(k.f_th)
                .append_value(if rng.chance(0.1) { 0.0 } else { r3(th * scale) });
            let unit = if inch {
                inch_spelling(rng).to_string()
            } else if rng.chance(0.3) {
                // mm is the plant default: an empty unit means mm.
                String::new()
            } else {
                mm_spelling(rng).to_string()
            };
            b.text(k.c_odu)
                .append_value(with_stray_space(rng, &unit, 0.03));
        }
        None => {
            b.num(k.f_od).append_value(0.0);
            b.num(k.f_id).append_value(0.0);
            b.num(k.f_th).append_value(0.0);
            match rng.below(100) {
                0..=89 => b.text(k.c_odu).append_value(""),
                90..=94 => b.text(k.c_odu).append_value("NA"),
                95..=97 => b.text(k.c_odu).append_value("MM/IN"),
                _ => b.text(k.c_odu).append_value("D"),
            }
        }
    }
    b.num(k.f_rcw)
        .append_value(if rng.chance(0.52) { 1.0 } else { 2.0 });
    if rng.chance(0.7655) {
        b.num(k.f_rccw).append_null();
    } else {
        b.num(k.f_rccw)
            .append_value(if rng.chance(0.5) { 1.0 } else { 2.0 });
    }
}

/// One item row's seal type group, inner, middle and outer seals, and raw material kind.
fn item_seals(rng: &mut Rng, b: &mut Builders, k: &ItemCols, row: &Row<'_>) {
    let Row {
        it, pt, seal_codes, ..
    } = *row;
    // Seal type group: the strongest signal, but 84 % missing.
    if rng.chance(0.8419) {
        b.text(k.c_stg).append_null();
    } else {
        b.text(k.c_stg)
            .append_value(format!("{}", 1000 + it.seal_family * 101 + (it.part % 3)));
    }
    // Inner seal: type code and size (mostly inch).
    if rng.chance(0.3) {
        missing_text(rng, b.text(k.c_insc), 0.015, 0.05);
        b.num(k.f_ins).append_value(0.0);
        missing_text(rng, b.text(k.c_insu), 0.015, 0.0);
    } else {
        b.text(k.c_insc)
            .append_value(with_stray_space(rng, &it.seal_code, 0.02));
        let size_in = match it.od_mm {
            Some(od) => (od / 25.4 * 0.6 * 8.0).round() / 8.0,
            None => 0.5 + rng.below(40) as f64 / 8.0,
        };
        let size_in = size_in.max(0.5);
        match rng.below(100) {
            0..=69 => {
                b.num(k.f_ins).append_value(size_in);
                b.text(k.c_insu).append_value(inch_spelling(rng));
            }
            70..=95 => {
                b.num(k.f_ins)
                    .append_value((size_in * 25.4 * 10.0).round() / 10.0);
                b.text(k.c_insu).append_value(mm_spelling(rng));
            }
            96..=97 => {
                b.num(k.f_ins).append_value(size_in);
                b.text(k.c_insu).append_value("KZ");
            }
            _ => {
                b.num(k.f_ins)
                    .append_value(if rng.chance(0.5) { 0.0 } else { 9999.0 });
                b.text(k.c_insu).append_value("GROUP");
            }
        }
    }
    // Middle seal: almost always empty.
    if rng.chance(0.005) {
        b.text(k.c_midc)
            .append_value(format!("{}", 1_002_090 + rng.below(6)));
        b.num(k.f_mid).append_value(1.0 + rng.below(8) as f64 / 8.0);
        b.text(k.c_midu)
            .append_value(*rng.pick(&["MM", "INCH", "in", "inch"]));
    } else {
        missing_text(rng, b.text(k.c_midc), 0.11, 0.0);
        if rng.chance(0.16) {
            b.num(k.f_mid).append_null()
        } else {
            b.num(k.f_mid).append_value(0.0)
        }
        missing_text(rng, b.text(k.c_midu), 0.11, 0.01);
    }
    // Outer seal: mostly empty.
    if rng.chance(0.15) && pt.class == 3 {
        b.text(k.c_outc)
            .append_value(seal_codes[(it.seal_family * 31) % seal_codes.len()].as_str());
        b.num(k.f_out)
            .append_value(1.0 + rng.below(24) as f64 / 8.0);
        b.text(k.c_outu)
            .append_value(*rng.pick(&["INCH", "MM", "mm", "inch", "52"]));
    } else {
        missing_text(rng, b.text(k.c_outc), 0.064, 0.0);
        if rng.chance(0.12) {
            b.num(k.f_out).append_null()
        } else {
            b.num(k.f_out).append_value(0.0)
        }
        missing_text(rng, b.text(k.c_outu), 0.064, 0.0);
    }
    // Raw material kind: mostly empty; names are Korean with full-width spaces.
    if rng.chance(0.12) {
        b.text(k.c_rk)
            .append_value(MATERIALS[it.material_class].raw_kind);
    } else {
        missing_text(rng, b.text(k.c_rk), 0.10, 0.0);
    }
    if rng.chance(0.03) {
        b.text(k.c_rknm).append_value(*rng.pick(&[
            "ROUND BAR",
            "박판PLATE",
            "주조\u{3000}원소재",
            "HOLLOW BAR",
            "주물\u{3000}원소재",
            "원소재\u{3000}1",
        ]));
    } else {
        b.text(k.c_rknm).append_null();
    }
}

/// `item_metadata.json`: production and sales volume per ITEM_CD.
fn write_item_metadata(out: &Path, spec: &SampleSpec, volumes: &Volumes) -> Result<()> {
    let n = spec.items;
    let mut vols = serde_json::Map::new();
    for (code, p, s) in volumes {
        vols.insert(
            code.clone(),
            serde_json::json!({"production_volume": p, "sales_volume": s}),
        );
    }
    let meta = serde_json::json!({
        "generator": "trainer sample",
        "items": n,
        "seed": spec.seed,
        "volume_unit": "units per year (synthetic)",
        "item_volumes": vols,
    });
    let path = out.join("item_metadata.json");
    atomic_write_with(&path, |w| {
        serde_json::to_writer(&mut *w, &meta).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })?;
    Ok(())
}

/// One routing header: which operations, when it was inserted.
/// Kind and position of a routing-view column in [`RoutingBuilders`].
enum RoutingCol {
    S(usize),
    F(usize),
    D(usize),
    Seq,
    Ts,
}

/// The routing view's column builders, addressed by column name.
struct RoutingBuilders {
    schema: Arc<Schema>,
    kinds: Vec<RoutingCol>,
    s: Vec<StringBuilder>,
    f: Vec<Float64Builder>,
    d: Vec<Date32Builder>,
    seq: Int32Builder,
    ts: TimestampMillisecondBuilder,
    /// Text columns that are almost always empty in the routing view.
    sparse_text: Vec<usize>,
}

impl RoutingBuilders {
    fn new(est: usize) -> RoutingBuilders {
        let schema = Arc::new(routing_schema());
        let (mut s, mut f, mut d) = (Vec::new(), Vec::new(), Vec::new());
        let kinds = schema
            .fields()
            .iter()
            .map(|fld| match fld.data_type() {
                DataType::Utf8 => {
                    s.push(StringBuilder::with_capacity(est, est * 6));
                    RoutingCol::S(s.len() - 1)
                }
                DataType::Float64 => {
                    f.push(Float64Builder::with_capacity(est));
                    RoutingCol::F(f.len() - 1)
                }
                DataType::Date32 => {
                    d.push(Date32Builder::with_capacity(est));
                    RoutingCol::D(d.len() - 1)
                }
                DataType::Int32 => RoutingCol::Seq,
                _ => RoutingCol::Ts,
            })
            .collect();
        let mut b = RoutingBuilders {
            schema,
            kinds,
            s,
            f,
            d,
            seq: Int32Builder::with_capacity(est),
            ts: TimestampMillisecondBuilder::with_capacity(est),
            sparse_text: Vec::new(),
        };
        b.sparse_text = [
            "ROUT_DOC",
            "NC_PROGRAM",
            "NC_PROGRAM_WRITER",
            "NC_WRITER_NM",
            "NC_REVIEWER",
            "NC_REVIEWER_NM",
            "JAW_SIZE",
            "PROGRAM_REMARK",
            "OP_DRAW_NO",
            "ROUT_SIZE",
            "MTMG_NUMB",
        ]
        .iter()
        .map(|n| b.text_index(n))
        .collect();
        b
    }

    fn kind(&self, name: &str) -> &RoutingCol {
        &self.kinds[self.schema.index_of(name).unwrap()]
    }

    fn text_index(&self, name: &str) -> usize {
        match self.kind(name) {
            RoutingCol::S(k) => *k,
            _ => unreachable!("{name} is not a text column"),
        }
    }

    fn text(&mut self, name: &str) -> &mut StringBuilder {
        let k = self.text_index(name);
        &mut self.s[k]
    }

    fn num(&mut self, name: &str) -> &mut Float64Builder {
        match *self.kind(name) {
            RoutingCol::F(k) => &mut self.f[k],
            _ => unreachable!("{name} is not a number column"),
        }
    }

    fn date(&mut self, name: &str) -> &mut Date32Builder {
        match *self.kind(name) {
            RoutingCol::D(k) => &mut self.d[k],
            _ => unreachable!("{name} is not a date column"),
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.kinds.len());
        for k in &self.kinds {
            arrays.push(match k {
                RoutingCol::S(i) => Arc::new(self.s[*i].finish()),
                RoutingCol::F(i) => Arc::new(self.f[*i].finish()),
                RoutingCol::D(i) => Arc::new(self.d[*i].finish()),
                RoutingCol::Seq => Arc::new(self.seq.finish()),
                RoutingCol::Ts => Arc::new(self.ts.finish()),
            });
        }
        RecordBatch::try_new(self.schema, arrays)
            .map_err(|e| Error::internal(format!("building the routing batch: {e}")))
    }
}

/// The work-order view's column builders (its column order: see `finish`).
struct WorkOrderBuilders {
    s: Vec<StringBuilder>,
    seq: Int32Builder,
    ts: TimestampMillisecondBuilder,
    f: Vec<Float64Builder>,
}

impl Default for WorkOrderBuilders {
    fn default() -> Self {
        WorkOrderBuilders {
            s: (0..7).map(|_| StringBuilder::new()).collect(),
            seq: Int32Builder::new(),
            ts: TimestampMillisecondBuilder::new(),
            f: (0..4).map(|_| Float64Builder::new()).collect(),
        }
    }
}

impl WorkOrderBuilders {
    fn finish(mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.s[0].finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.s[1].finish()),
            Arc::new(self.s[2].finish()),
            Arc::new(self.s[3].finish()),
            Arc::new(self.s[4].finish()),
            Arc::new(self.s[5].finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.f[0].finish()),
            Arc::new(self.f[1].finish()),
            Arc::new(self.f[2].finish()),
            Arc::new(self.f[3].finish()),
        ];
        RecordBatch::try_new(Arc::new(work_order_schema()), arrays)
            .map_err(|e| Error::internal(format!("building the work-order batch: {e}")))
    }
}

/// One operation of one routing, as the routing and work-order rows are drawn from it.
struct Operation<'a> {
    it: &'a Item,
    part_name: &'a str,
    rout_no: &'a str,
    /// Position in the routing, and the routing's length.
    k: usize,
    n_ops: usize,
    op: &'static str,
    out: bool,
    res: &'static str,
    res_dis: &'static str,
    /// INSRT_DT (ms) and its day.
    t: i64,
    day: i32,
    od: f64,
    setup: f64,
    run: f64,
}

/// One row of the routing view.
fn operation_row(rng: &mut Rng, b: &mut RoutingBuilders, o: &Operation<'_>) {
    let Operation {
        it,
        part_name,
        rout_no,
        k,
        n_ops,
        op,
        out,
        res,
        res_dis,
        t,
        day,
        od,
        setup,
        run,
    } = *o;
    b.text("ROUT_NO").append_value(rout_no);
    b.text("ITEM_CD").append_value(it.code.trim());
    b.text("ITEM_NM")
        .append_value(format!("{} {}", it.material_desc, part_name));
    b.seq.append_value(((k + 1) * 10) as i32);
    b.ts.append_value(t);
    b.num("OUTDIAMETER").append_value(od);
    b.num("INDIAMETER")
        .append_value((od * 0.6 * 1000.0).round() / 1000.0);
    b.num("OUTTHICKNESS")
        .append_value((od * 0.15 * 1000.0).round() / 1000.0);
    b.text("OUTDIAMETER_UNIT")
        .append_value(if od > 0.0 { "MM" } else { "" });
    b.text("INSIDE_FLAG").append_value(if out {
        "외주"
    } else if rng.chance(0.2) {
        "Y"
    } else {
        "사내"
    });
    b.text("JOB_CD").append_value(op);
    b.text("JOB_NM").append_value(op_name(op));
    b.text("RES_CD").append_value(res);
    b.text("RES_DIS").append_value(res_dis);
    b.text("TIME_UNIT")
        .append_value(if rng.chance(0.5) { "M" } else { "분(Min.)" });
    b.num("MFG_LT").append_value(0.0);
    b.num("QUEUE_TIME").append_value(0.0);
    b.num("SETUP_TIME").append_value(setup);
    b.num("RUN_TIME").append_value(run);
    b.num("ACT_SETUP_TIME")
        .append_value((setup * (0.8 + 0.4 * rng.f64()) * 10.0).round() / 10.0);
    b.num("ACT_RUN_TIME")
        .append_value((run * (0.8 + 0.5 * rng.f64()) * 10.0).round() / 10.0);
    b.num("WAIT_TIME").append_value(if out {
        200.0
    } else {
        [0.0, 0.0, 300.0][rng.below(3)]
    });
    b.num("MOVE_TIME")
        .append_value(if out { 200.0 } else { 0.0 });
    b.num("RUN_TIME_QTY").append_value(1.0);
    b.text("RUN_TIME_UNIT").append_value("NA");
    b.text("BATCH_OPER")
        .append_value(if out { "B" } else { "" });
    if out {
        b.text("BP_CD")
            .append_value(format!("V{}", 3300 + rng.below(20)));
        b.text("CUST_NM")
            .append_value(*rng.pick(&["동양질화", "대한도금", "한국열처리"]));
        b.text("CUR_CD").append_value("KRW");
        b.num("SUBCONTRACT_PRC")
            .append_value((1000 + rng.below(50) * 100) as f64);
        b.text("TAX_TYPE").append_value("A");
    } else {
        b.text("BP_CD").append_null();
        b.text("CUST_NM").append_null();
        b.text("CUR_CD").append_null();
        b.num("SUBCONTRACT_PRC").append_value(0.0);
        b.text("TAX_TYPE").append_null();
    }
    b.text("MILESTONE_FLG").append_value("Y");
    b.text("INSP_FLG")
        .append_value(if op.starts_with('Q') { "Y" } else { "N" });
    b.text("ROUT_ORDER").append_value(if k == 0 {
        "F"
    } else if k + 1 == n_ops {
        "L"
    } else {
        "I"
    });
    b.date("VALID_FROM_DT").append_value(day);
    b.date("VALID_TO_DT").append_value(376_199); // 2999-12-31
    b.text("REMARK")
        .append_value(if rng.chance(0.05) { "긴급 " } else { "" });
    for i in 0..b.sparse_text.len() {
        let c = b.sparse_text[i];
        b.s[c].append_null();
    }
    b.date("NC_WRITE_DATE").append_null();
    b.date("NC_REVIEW_DT").append_null();
    if k == 0 && od > 0.0 {
        b.text("RAW_MATL_SIZE")
            .append_value(format!("{}mm", (od * 1.05).round()));
    } else {
        b.text("RAW_MATL_SIZE").append_null();
    }
    b.text("VALIDITY").append_value("Y");
}

/// One row of the work-order view: actuals (hours) of an operation of a current routing.
fn work_order_row(rng: &mut Rng, w: &mut WorkOrderBuilders, o: &Operation<'_>) {
    let Operation {
        it,
        rout_no,
        k,
        op,
        res,
        res_dis,
        t,
        setup,
        run,
        ..
    } = *o;
    w.s[0].append_value(it.code.trim());
    w.seq.append_value(((k + 1) * 10) as i32);
    w.s[1].append_value(rout_no);
    w.s[2].append_value(res);
    w.s[3].append_value(res_dis);
    w.s[4].append_value(op);
    w.s[5].append_value(op_name(op));
    w.ts.append_value(t + (1 + rng.below(400)) as i64 * 3_600_000);
    let qty = (1 + rng.below(20)) as f64;
    let hours = run * qty / 60.0 * (0.7 + 0.7 * rng.f64());
    w.f[0].append_value((hours * 1000.0).round() / 1000.0);
    w.f[1].append_value((setup / 60.0 * 1000.0).round() / 1000.0);
    w.f[2].append_value(qty);
    w.f[3].append_value(if rng.chance(0.05) { 1.0 } else { 0.0 });
}

fn build_routings(
    rng: &mut Rng,
    items: &[Item],
    parts: &[PartType],
) -> Result<(RecordBatch, RecordBatch)> {
    let est = items.len() * 6;
    let mut b = RoutingBuilders::new(est);
    let mut w = WorkOrderBuilders::default();

    // 2015-01-01 .. 2025-10-01 in ms.
    let t0: i64 = 1_420_070_400_000;
    let span: i64 = 340_000_000_000;
    for it in items {
        if it.purchased {
            continue;
        }
        let n_rout = 1 + rng.weighted(&[0.75, 0.2, 0.05]);
        // The latest routing is the current one; older ones are earlier, noisier versions.
        let latest_t = t0 + (rng.f64() * span as f64) as i64 / 1000 * 1000;
        let tie = n_rout > 1 && rng.chance(0.05);
        for r in 0..n_rout {
            let current = r == n_rout - 1;
            let mut ops = it.routing_key_ops.clone();
            if !current {
                deviate(rng, &mut ops);
            }
            let t = if current || tie {
                latest_t
            } else {
                latest_t - (1 + rng.below(900)) as i64 * 86_400_000
            };
            // ROUT_NO: letters+digits; ties on INSRT_DT are broken by ROUT_NO descending, so the
            // current one gets the larger suffix.
            let rout_no = if is_outsourced(ops[0]) {
                "외주".to_string()
            } else {
                match rng.below(2) {
                    0 => format!("C1M{:07}", 3_000_000 + r * 11 + rng.below(10)),
                    _ => format!("{}#{}L{:02}C", ["B", "D"][r % 2], r + 1, rng.below(90)),
                }
            };
            let rout_no = if tie {
                format!("R{:02}-{}", r, rout_no)
            } else {
                rout_no
            };
            let day = (t / 86_400_000) as i32;
            let od = it.od_mm.unwrap_or(0.0);
            for (k, op) in ops.iter().enumerate() {
                let out = is_outsourced(op);
                let (res, res_dis) = resource_for(op, it.large);
                let size_factor = 1.0 + od / 150.0;
                let run = if out {
                    0.0
                } else {
                    ((5.0 + (k as f64 * 7.0) % 30.0) * size_factor).round()
                };
                let setup = if out || rng.chance(0.5) {
                    0.0
                } else {
                    (rng.f64() * 20.0).round()
                };
                let o = Operation {
                    it,
                    part_name: &parts[it.part].name,
                    rout_no: &rout_no,
                    k,
                    n_ops: ops.len(),
                    op,
                    out,
                    res,
                    res_dis,
                    t,
                    day,
                    od,
                    setup,
                    run,
                };
                operation_row(rng, &mut b, &o);

                // Work-order actuals (hours) for the current routing of about half of the items.
                if current && !out && (it.code.len() + k) % 2 == 0 && rng.chance(0.9) {
                    work_order_row(rng, &mut w, &o);
                }
            }
        }
    }
    Ok((b.finish()?, w.finish()?))
}
