//! pyo3's cfgs (`Py_LIMITED_API`, `Py_GIL_DISABLED`, `Py_3_x`) for this crate's own code: the
//! abi3 build reads Python lists through `pylist`'s borrowed fast path.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
