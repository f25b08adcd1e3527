//! The ERP contract (`specs/erp_views.yaml`): the three views' names, the logical names the SQL
//! layers know them by, and the type of every column. The ODBC reader casts to these types,
//! `recommend` reads new items in them, and the sample generator writes them.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

pub const ITEM_VIEW: &str = "dbo_BI_ITEM_INFO_VIEW";
pub const ROUTING_VIEW: &str = "dbo_BI_ROUTING_VIEW";
pub const WORK_ORDER_VIEW: &str = "dbo_BI_WORK_ORDER_RESULTS";

/// Column types of the three views, in view order (the spec's order).
pub fn item_schema() -> Schema {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Schema::new(vec![
        s("ITEM_CD"),
        s("PART_TYPE"),
        s("PartNm"),
        s("ITEM_SUFFIX"),
        s("ITEM_SPEC"),
        s("ITEM_NM"),
        s("ADDITIONAL_SPEC"),
        s("ITEM_MATERIAL"),
        s("MATERIAL_DESC"),
        s("ITEM_ACCT"),
        s("ITEM_TYPE"),
        s("ITEM_UNIT"),
        s("ITEM_GRP1"),
        s("ITEM_GRP1NM"),
        s("STANDARD_YN"),
        s("GROUP1"),
        s("GROUP2"),
        s("GROUP3"),
        s("DRAW_NO"),
        s("DRAW_REV"),
        s("DRAW_SHEET_NO"),
        s("DRAW_USE"),
        s("ITEM_NM_ENG"),
        f("OUTDIAMETER"),
        f("INDIAMETER"),
        f("OUTTHICKNESS"),
        s("OUTDIAMETER_UNIT"),
        f("ROTATE_CLOCKWISE"),
        f("ROTATE_CTRCLOCKWISE"),
        s("SealTypeGrup"),
        s("IN_SEALTYPE_CD"),
        f("IN_SEALSIZE"),
        s("IN_SEALSIZE_UOM"),
        s("MID_SEALTYPE_CD"),
        f("MID_SEALSIZE"),
        s("MID_SEALSIZE_UOM"),
        s("OUT_SEALTYPE_CD"),
        f("OUT_SEALSIZE"),
        s("OUT_SEALSIZE_UOM"),
        s("RAW_MATL_KIND"),
        s("RAW_MATL_KINDNM"),
    ])
}

pub fn routing_schema() -> Schema {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    let d = |n: &str| Field::new(n, DataType::Date32, true);
    Schema::new(vec![
        s("ROUT_NO"),
        s("ITEM_CD"),
        s("ITEM_NM"),
        Field::new("PROC_SEQ", DataType::Int32, true),
        Field::new(
            "INSRT_DT",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        f("OUTDIAMETER"),
        f("INDIAMETER"),
        f("OUTTHICKNESS"),
        s("OUTDIAMETER_UNIT"),
        s("INSIDE_FLAG"),
        s("JOB_CD"),
        s("JOB_NM"),
        s("RES_CD"),
        s("RES_DIS"),
        s("TIME_UNIT"),
        f("MFG_LT"),
        f("QUEUE_TIME"),
        f("SETUP_TIME"),
        f("RUN_TIME"),
        f("ACT_SETUP_TIME"),
        f("ACT_RUN_TIME"),
        f("WAIT_TIME"),
        f("MOVE_TIME"),
        f("RUN_TIME_QTY"),
        s("RUN_TIME_UNIT"),
        s("BATCH_OPER"),
        s("BP_CD"),
        s("CUST_NM"),
        s("CUR_CD"),
        f("SUBCONTRACT_PRC"),
        s("TAX_TYPE"),
        s("MILESTONE_FLG"),
        s("INSP_FLG"),
        s("ROUT_ORDER"),
        d("VALID_FROM_DT"),
        d("VALID_TO_DT"),
        s("REMARK"),
        s("ROUT_DOC"),
        s("NC_PROGRAM"),
        s("NC_PROGRAM_WRITER"),
        s("NC_WRITER_NM"),
        d("NC_WRITE_DATE"),
        s("NC_REVIEWER"),
        s("NC_REVIEWER_NM"),
        d("NC_REVIEW_DT"),
        s("RAW_MATL_SIZE"),
        s("JAW_SIZE"),
        s("VALIDITY"),
        s("PROGRAM_REMARK"),
        s("OP_DRAW_NO"),
        s("ROUT_SIZE"),
        s("MTMG_NUMB"),
    ])
}

pub fn work_order_schema() -> Schema {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Schema::new(vec![
        s("ITEM_CD"),
        Field::new("PROC_SEQ", DataType::Int32, true),
        s("ROUT_NO"),
        s("RES_CD"),
        s("RES_DIS"),
        s("JOB_CD"),
        s("CD_NM"),
        Field::new(
            "REPORT_DT",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        f("MACH_WORKED_HOURS"),
        f("SETUP_HOURS"),
        f("ORDER_QTY"),
        f("BAD_QTY"),
    ])
}

/// A source view: its ERP name and the logical name the SQL layers use (`erp_<logical>`).
pub struct ViewDef {
    pub erp_name: &'static str,
    pub logical: &'static str,
}

pub const VIEWS: &[ViewDef] = &[
    ViewDef {
        erp_name: ITEM_VIEW,
        logical: "items",
    },
    ViewDef {
        erp_name: ROUTING_VIEW,
        logical: "routings",
    },
    ViewDef {
        erp_name: WORK_ORDER_VIEW,
        logical: "work_orders",
    },
];

/// The ERP contract: the type of every column of every view, from the spec.
pub fn contract_schema(view: &str) -> Schema {
    match view {
        ITEM_VIEW => item_schema(),
        ROUTING_VIEW => routing_schema(),
        _ => work_order_schema(),
    }
}
