//! Tests of `npy.rs`: the header parser's one-line errors, finite features and targets.

mod header_error_tests {
    use super::super::header_error;

    #[test]
    fn a_parse_diagram_becomes_one_line() {
        let diagram = " --> 1:36\n  |\n1 | {'descr': '<f4', 'fortran_order': Flase, }\n  |  \
                       ^---\n  |\n  = expected value";
        let one = header_error(diagram);
        assert_eq!(one, "the header dict does not parse (syntax error at 1:36): expected value");
        let deep = format!(
            "could not parse Python expression: syntax error:  --> 1:2\n  |\n1 | {}\n  |\n  = stack limit reached",
            "[".repeat(30_000)
        );
        assert_eq!(
            header_error(&deep),
            "the header dict does not parse (could not parse Python expression: syntax error at 1:2): \
             stack limit reached"
        );
        let long = header_error(&"x".repeat(1000));
        assert!(long.chars().count() <= 301 && !long.contains('\n'));
        assert_eq!(header_error("two\nlines"), "two; lines");
    }
}

mod finite_tests {
    use super::super::*;

    #[test]
    fn features_and_targets_must_be_finite_and_the_error_names_the_element() {
        let d = std::env::temp_dir().join(format!("batchscope-npy-finite-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        let x = d.join("x.npy");
        let mut data = vec![0.5f32; 3 * 4];
        write_npy_f32(&x, &[3, 4], &data).expect("write");
        assert!(read_features(&x).is_ok());
        for (bad, shown) in [(f32::INFINITY, "inf"), (f32::NAN, "NaN"), (f32::NEG_INFINITY, "-inf")] {
            data[6] = bad;
            write_npy_f32(&x, &[3, 4], &data).expect("write");
            let e = read_features(&x).expect_err("a non-finite feature").to_string();
            assert!(e.contains(&format!("element [1, 2] is {shown}: features must be finite")), "{e}");
        }
        let y = d.join("y.npy");
        write_npy_f32(&y, &[2, 2], &[1.0, 2.0, f32::NAN, 0.0]).expect("write");
        let e = read_labels(&y, 2).expect_err("a NaN target").to_string();
        assert!(e.contains("element [1, 0] is NaN: regression targets must be finite"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
