use super::*;

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default().expect("default config");
    assert_eq!(c.mlp_spec().sizes.first(), Some(&c.data.dim));
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let e = Config::from_toml("[train]\nlearning_rate = 0.1\n", "t.toml").unwrap_err().to_string();
    assert!(e.contains("learning_rate"), "{e}");
    let e = Config::from_toml("[trian]\n", "t.toml").unwrap_err().to_string();
    assert!(e.contains("trian"), "{e}");
}

#[test]
fn out_of_range_values_name_the_key() {
    for (toml, key) in [
        ("[train]\nlr = -1.0\n", "train.lr"),
        ("[train]\nbatch_size = 0\n", "train.batch_size"),
        ("[data]\nlabel_noise = 2.0\n", "data.label_noise"),
        ("[sweep]\nmin_batch = 8\nmax_batch = 4\n", "sweep.max_batch"),
        ("[data]\nkind = \"linear_regression\"\n", "model.loss"),
        // More repeats than examples would leave one distinct example.
        ("[data]\nn_train = 100\nduplicates = 101\n", "data.duplicates"),
        // The device counts clean f16 steps in an f32, exact to 2^24.
        ("[train]\nloss_scale_growth_interval = 16777217\n", "2^24"),
        // The GPU generator indexes repeats in 32 bits: a stream passed on the CPU only.
        ("[data]\nmode = \"stream\"\nn_train = 9000000000000\nduplicates = 5000000000\n", "2^31"),
        // Synthetic data has its own validation set; the fraction splits npy files only.
        ("[data]\nval_fraction = 0.3\n", "data.val_fraction"),
        // Early stopping and a target error read a validation set that n_val = 0 leaves empty.
        ("[data]\nn_val = 0\n[train]\npatience = 3\n", "train.patience"),
        // Host-side teacher labels cost data.dim × width each.
        ("[data]\nkind = \"teacher\"\nteacher_hidden = 65537\n", "data.teacher_hidden"),
        // ... and (n_train + n_val + 4096) × width × (dim + classes) in all: 2^36 at most (the
        // documented widest teacher on 784 inputs ran for minutes before the first step).
        (
            "[data]\nkind = \"teacher\"\ndim = 784\nn_train = 256\nn_val = 64\nteacher_hidden = 65536\n",
            "past the 6.9e10 a run may spend",
        ),
        // A teacher's biases are balanced on 4096 inputs: 4 a class at least.
        ("[data]\nkind = \"teacher\"\nclasses = 1025\n", "1024 classes a teacher labels"),
        // With no time budget nothing else ends a batch size's timing.
        ("[sweep]\ntimed_steps = 100001\n", "sweep.timed_steps"),
        ("[sweep]\nwarmup_steps = 100001\n", "sweep.warmup_steps"),
        ("[sweep]\nrounds = 0\n", "sweep.rounds"),
        ("[sweep]\nrounds = 101\n", "the 100 a sweep runs"),
        ("[sweep]\nrounds = 20\ntimed_steps = 5001\n", "100020 timed steps per batch size"),
        // A stream is read in its own order.
        ("[data]\nmode = \"stream\"\n[train]\nsorted_by_label = true\n", "train.sorted_by_label"),
        ("[data]\nmode = \"stream\"\n[train]\nshuffle = \"once\"\n", "train.shuffle"),
        // Keys of one synthetic kind set for another changed nothing.
        ("[data]\nnoise_std = 1e38\n", "data.noise_std"),
        ("[data]\nkind = \"teacher\"\nseparation = 1.0\n", "data.separation"),
        ("[data]\nteacher_hidden = 32\n", "data.teacher_hidden"),
        (
            "[model]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\nseparation = 2.0\n",
            "does not read it",
        ),
        // A regression has no 0-1 error to reach.
        (
            "[model]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\n[train]\ntarget_val_error = 0.1\n",
            "train.target_val_error",
        ),
        // ... and its early stopping reads a validation set too.
        (
            "[model]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\nn_val = 0\n[train]\npatience = 3\n",
            "train.patience",
        ),
        // The other kind's output count.
        ("[data]\noutputs = 3\n", "data.outputs"),
        ("[model]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\nclasses = 3\n", "data.classes"),
        ("[data]\nn_val = 0\n[train]\ntarget_val_error = 0.2\n", "train.target_val_error"),
        // Evaluations of a validation set that has no rows.
        ("[data]\nn_val = 0\n[train]\neval_every = 4\n", "train.eval_every"),
    ] {
        let e = Config::from_toml(toml, "t.toml").unwrap_err().to_string();
        assert!(e.contains(key), "{toml}: {e}");
    }
    // A regression's evaluations measure its validation loss: they stand.
    let mse =
        "[model]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\n[train]\neval_every = 16\n";
    assert_eq!(Config::from_toml(mse, "t").unwrap().train.eval_every, 16);
    // ... and its early stopping follows that loss.
    let mse_patience =
        "[model]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\n[train]\npatience = 3\n";
    assert_eq!(Config::from_toml(mse_patience, "t").unwrap().train.patience, 3);
    let both = "[data]\nn_val = 0\n[train]\neval_every = 4\neval_train = true\n";
    assert!(Config::from_toml(both, "t").is_ok(), "eval_train evaluates the training set");
}

#[test]
fn synthetic_data_takes_as_many_repeats_as_examples() {
    let c = Config::from_toml("[data]\nn_train = 100\nduplicates = 100\n", "t").unwrap();
    assert_eq!((c.data.n_train, c.data.duplicates), (100, 100));
}

#[test]
fn batch_size_accepts_auto() {
    let c = Config::from_toml("[train]\nbatch_size = \"auto\"\n", "t").unwrap();
    assert_eq!(c.train.batch_size, BatchSize::Auto);
    assert!(Config::from_toml("[train]\nbatch_size = \"big\"\n", "t").is_err());
}

#[test]
fn overrides_apply_and_are_validated() {
    let c = Config::load(
        None,
        &["train.lr=0.5".into(), "model.hidden=[8, 4]".into(), "data.kind=teacher".into()],
    )
    .unwrap();
    assert_eq!(c.train.lr, 0.5);
    assert_eq!(c.model.hidden, vec![8, 4]);
    assert_eq!(c.data.kind, DataKind::Teacher);
    assert!(Config::load(None, &["train.lr".into()]).is_err());
    assert!(Config::load(None, &["lr=0.1".into()]).is_err());
    let e = Config::load(None, &["train.nope=1".into()]).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    // An integer TOML cannot hold is said to be one (it used to read as a string).
    for big in ["9223372036854775808", "-9_223_372_036_854_775_809"] {
        let e = Config::load(None, &[format!("data.seed={big}")]).unwrap_err().to_string();
        assert!(e.contains("largest integer TOML holds"), "{e}");
    }
    let c = Config::load(None, &["data.seed=9_223_372_036_854_775_807".into()]).unwrap();
    assert_eq!(c.data.seed, i64::MAX as u64);
    // A word that merely starts with digits is still a bare string.
    assert!(Config::load(None, &["data.kind=12abc".into()]).unwrap_err().to_string().contains("12abc"));
    // A line break then another key: refused (the second key was dropped without a word).
    for two in ["train.lr=0.1\ntrain.epochs=1", "train.lr=0.1\n[data]\nseed=3"] {
        let e = Config::load(None, &[two.into()]).unwrap_err().to_string();
        assert!(e.contains("more than one key = value") && !e.contains("panicked"), "{e}");
    }
    let c = Config::load(None, &["train.lr=0.25 # a comment".into()]).unwrap();
    assert_eq!(c.train.lr, 0.25);
    // Past f32's range: said by key with the number given (it read "must be positive, got inf").
    let e = Config::load(None, &["train.lr=3.5e38".into()]).unwrap_err().to_string();
    assert!(e.contains("`train.lr`: 3.5e38 is past the largest value an f32"), "{e}");
    let e = Config::from_toml("[data]\nnoise_std = -1e39\n", "t").unwrap_err().to_string();
    assert!(e.contains("`data.noise_std`: -1e39") && e.contains("(line 2)"), "{e}");
    // Past f64's range: TOML refuses it, and it read "invalid type: string" (inf is TOML).
    for huge in ["1e400", "-1_0e400"] {
        let e = Config::load(None, &[format!("train.lr={huge}")]).unwrap_err().to_string();
        assert!(e.contains(&format!("{huge} is past the largest number TOML holds")), "{e}");
    }
    let e = Config::load(None, &["train.lr=inf".into()]).unwrap_err().to_string();
    assert!(!e.contains("largest number TOML"), "{e}");
    // An f64 setting holds it; f32's largest value loads.
    assert!(Config::load(None, &["sweep.time_budget_s=1e300".into()]).is_ok());
    assert!(Config::load(None, &[format!("train.clip_norm={:e}", f32::MAX)]).is_ok());
}

#[test]
fn resolved_config_round_trips() {
    let c = Config::embedded_default().unwrap();
    let again = Config::from_toml(&c.to_toml(), "resolved").unwrap();
    assert_eq!(c, again);
}

#[test]
fn sweep_policy_is_parsed_at_load_and_written_back_canonical() {
    use crate::config::policy::Policy;
    // Any spelling Policy reads is the same policy, and config.toml says it as summary.json's
    // `policy` does: `Knee` was knee:0.9 whatever the fraction, `max-throughput` was kept.
    for (text, canonical, resolved) in [
        ("knee", "knee", Some(Policy::Knee { fraction: 0.75 })),
        ("Knee", "knee", Some(Policy::Knee { fraction: 0.75 })),
        ("knee:0.80", "knee:0.8", Some(Policy::Knee { fraction: 0.8 })),
        ("max_throughput", "max_throughput", Some(Policy::MaxThroughput)),
        ("max-throughput", "max_throughput", Some(Policy::MaxThroughput)),
        ("Largest-Fit", "largest_fit", Some(Policy::LargestFit)),
        ("time_to_target:12.5", "time_to_target:12.5", Some(Policy::TimeToTarget { b_noise: 12.5 })),
        ("time_to_target:auto", "time_to_target:auto", None),
        (" Time-To-Target : AUTO", "time_to_target:auto", None),
    ] {
        let toml = format!("[sweep]\npolicy = \"{text}\"\nknee_fraction = 0.75\n");
        let c = Config::from_toml(&toml, "t").unwrap();
        assert_eq!(c.sweep.policy.resolve(c.sweep.knee_fraction), resolved, "{text}");
        let written = c.to_toml();
        assert!(written.contains(&format!("policy = \"{canonical}\"")), "{text}: {written}");
        assert_eq!(Config::from_toml(&written, "again").unwrap(), c);
    }
    let e = Config::load(None, &["sweep.policy=fastest".into()]).unwrap_err().to_string();
    assert!(e.contains("sweep.policy") && e.contains("fastest"), "{e}");
    assert!(e.contains("time_to_target:auto"), "the sweep's own policy is listed: {e}");
    let e = Config::load(None, &["sweep.policy=\"time_to_target\"".into()]).unwrap_err().to_string();
    assert!(e.contains("time_to_target:auto"), "{e}");
}

#[test]
fn type_errors_and_overrides_from_one_loader() {
    let e = Config::from_toml("[train]\nlr = \"fast\"\n", "t.toml").unwrap_err().to_string();
    assert!(e.contains("t.toml") && e.contains("`train.lr`") && e.contains("(line 2)"), "{e}");
    let e =
        Config::from_toml("[model]\n\n[train]\nsteps = 3\nlrr = 1\n", "u.toml").unwrap_err().to_string();
    assert!(e.contains("`train.lrr`") && e.contains("(line 5)"), "{e}");
    let e = Config::load(None, &["train.lr=\"x\"".into()]).unwrap_err().to_string();
    assert!(e.contains("`train.lr`") && !e.contains("line"), "{e}");
    let e = Config::from_toml("[train\nlr = 1", "t.toml").unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
    let mut text = ConfigText::load(
        None,
        "[train]\nlr = 0.5\n[depth]\nlayers = 3\n",
        "x",
        &["train.steps=9".into()],
    )
    .unwrap();
    assert_eq!(text.origin, "x (embedded)");
    let d: DepthConfig = text.take_section("depth").unwrap();
    assert_eq!(d.layers, 3);
    let l: LandscapeConfig = text.take_section("landscape").unwrap();
    assert_eq!(l, LandscapeConfig::default());
    let c = Config::from_table(text.table, &text.origin).unwrap();
    assert_eq!((c.train.lr, c.train.steps), (0.5, 9));
}

#[test]
fn a_section_written_as_an_array_or_a_value_is_named_as_such() {
    // `[[train]]` read as a tuple of [train]'s fields: the error named the batch size's type.
    let e = Config::from_toml("[[train]]\nepochs = 1\n", "a.toml").unwrap_err().to_string();
    assert!(e.contains("`train`: is one table, [train]; the file writes [[train]]"), "{e}");
    assert!(e.contains("(line 1)") && !e.contains("batch"), "{e}");
    let e = Config::from_toml("[model]\nhidden = [8]\n[[data]]\n", "b.toml").unwrap_err().to_string();
    assert!(e.contains("`data`: is one table") && e.contains("(line 3)"), "{e}");
    let e = Config::from_toml("gpu = 3\n", "c.toml").unwrap_err().to_string();
    assert!(e.contains("`gpu`: must be a table ([gpu]), got integer"), "{e}");
    // An empty array, or one of a table's values, was taken without a word.
    for (text, key) in [("train = []\n", "train"), ("[gpu]\n", ""), ("gpu = [\"on\"]\n", "gpu")] {
        let r = Config::from_toml(text, "d.toml");
        if key.is_empty() {
            assert!(r.is_ok(), "{text}");
            continue;
        }
        let e = r.unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`: must be a table ([{key}]), got array")), "{e}");
    }
    // An array that is one (model.hidden) is no table.
    assert_eq!(Config::from_toml("[model]\nhidden = [8]\n", "h").unwrap().model.hidden, vec![8]);
    // A section of another command's file is its own (DepthConfig has no [train]).
    let mut text = ConfigText::load(None, "[[depth]]\nlayers = 3\n", "x", &[]).unwrap();
    let e = text.take_section::<DepthConfig>("depth").unwrap_err().to_string();
    assert!(e.contains("must be a table ([depth])"), "{e}");
}

#[test]
fn a_setting_of_fixed_words_given_another_type_lists_the_words() {
    // It read "invalid type: unit variant, expected string only".
    for (set, words) in [
        ("gpu.autotune=true", "expected one of `off`, `cached`, `on`, got true"),
        ("model.activation=3", "expected one of `identity`, `relu`, `tanh`, got 3"),
        ("model.activation=[1]", "got [1]"),
        ("model.activation={a=1}", "got { a = 1 }"),
        ("model.precision=16", "expected `f32` or `f16`, got 16"),
    ] {
        let e = Config::load(None, &[set.into()]).unwrap_err().to_string();
        let key = set.split('=').next().unwrap();
        assert!(e.contains(&format!("`{key}`: expected ")), "{set}: {e}");
        assert!(e.contains(words) && !e.contains("variant"), "{set}: {e}");
    }
    let e = Config::from_toml("[model]\nactivation = 1.5\n", "f.toml").unwrap_err().to_string();
    assert!(e.contains("`model.activation`: expected one of") && e.contains("(line 2)"), "{e}");
    // A word that is not one still says so as serde does.
    let e = Config::load(None, &["model.activation=gelu".into()]).unwrap_err().to_string();
    assert!(e.contains("unknown variant `gelu`"), "{e}");
}

#[test]
fn parse_errors_name_their_key() {
    for (text, said) in [
        ("[model]\nhidden = [8]\n[model]\n", "`model` is given twice (line 3)"),
        ("[train]\nbatch_size = 2\nbatch_size = 3\n", "`train.batch_size` is given twice (line 3)"),
        ("model = 3\n[model]\n", "`model` is given twice (line 2)"),
        (
            "[train]\nseed = 18446744073709551616\n",
            "`train.seed`: the integer is past the largest TOML holds",
        ),
        ("[train]\nlr = 1e400\n", "`train.lr`: the number is past the largest TOML holds"),
        ("[train]\nlr = = 1\n", "`train.lr`: "),
    ] {
        let e = Config::from_toml(text, "p.toml").unwrap_err().to_string();
        assert!(e.contains(said), "{text:?}: {e}");
    }
}

#[test]
fn set_values_are_named_in_toml_terms() {
    let set = |v: &str| Config::load(None, &[v.into()]).unwrap_err().to_string();
    // Spellings of numbers TOML does not have read as strings: "invalid type: string".
    for v in ["NaN", ".1", "1.", "Infinity"] {
        let e = set(&format!("train.lr={v}"));
        assert!(e.contains(&format!("got \"{v}\", which is no TOML number")), "{v}: {e}");
    }
    // Infinity was said to be "past the largest number TOML holds".
    assert!(!set("train.lr=Infinity").contains("past the largest"));
    let e = set("train.batch_size=1e3");
    assert!(e.contains("got 1000 as a float"), "{e}");
    // A list that does not parse was a string: "expected a sequence".
    let e = set("model.hidden=[18446744073709551616]");
    assert!(e.contains("an integer in the value is past the largest TOML holds"), "{e}");
    let e = set("model.hidden=[8");
    assert!(e.contains("does not parse as TOML") && !e.contains("sequence"), "{e}");
    // A bare word is still a string (an enum's word).
    assert_eq!(
        Config::load(None, &["model.activation=tanh".into()]).unwrap().model.activation,
        crate::backend::Activation::Tanh
    );
}

#[test]
fn a_float_that_rounds_to_a_refused_f32_is_shown_as_written() {
    let e = Config::load(None, &["train.momentum=0.99999999".into()]).unwrap_err().to_string();
    assert!(e.contains("got 1 (0.99999999 as written, which an f32 setting holds as 1)"), "{e}");
    let e = Config::from_toml("[train]\nlr = 1e-50\n", "r.toml").unwrap_err().to_string();
    assert!(e.contains("(1e-50 as written, which an f32 setting holds as 0)"), "{e}");
    let e = Config::load(None, &["train.momentum=1.5".into()]).unwrap_err().to_string();
    assert!(!e.contains("as written"), "{e}");
}

#[test]
fn the_key_the_command_line_set_is_the_one_blamed() {
    let e = Config::from_toml("[train]\nepochs = 0\nsteps = 0\n", "s.toml").unwrap_err().to_string();
    assert!(
        e.contains(
            "`train.epochs` = 0, and train.epochs, train.steps, train.one_pass and train.max_seconds"
        ),
        "{e}"
    );
    let e =
        Config::load(None, &["train.epochs=0".into(), "train.steps=0".into()]).unwrap_err().to_string();
    assert!(e.contains("`train.steps` set on the command line = 0"), "{e}");
    let e = Config::load(None, &["sweep.min_batch=8192".into()]).unwrap_err().to_string();
    assert!(e.contains("`sweep.min_batch` set on the command line must be ≤ sweep.max_batch"), "{e}");
}

#[test]
fn a_set_that_every_variant_replaces_is_refused_and_variant_errors_name_their_set() {
    let file = "[rnn]\nw_scale = 1.0\n[[variant]]\nname = \"a\"\nset = [\"rnn.w_scale=0.9\"]\n[[variant]]\nname = \"b\"\nset = [\"rnn.w_scale=1.1\", \"rnn.w_scale=1.2\"]\n";
    let mut text = ConfigText::load(None, file, "v", &["rnn.w_scale=nan".into()]).unwrap();
    let e = text.variants("run").unwrap_err().to_string();
    assert!(
        e.contains("--set rnn.w_scale")
            && e.contains("every [[variant]]")
            && e.contains("changes no run"),
        "{e}"
    );
    // One variant keeps the --set: it runs, and is checked there.
    let some = file.replace("set = [\"rnn.w_scale=0.9\"]", "set = []");
    let mut text = ConfigText::load(None, &some, "v", &["rnn.w_scale=0.95".into()]).unwrap();
    assert_eq!(text.variants("run").unwrap().len(), 2);
    // `set` given as one string: named, with what it takes.
    let one = "[[variant]]\nname = \"a\"\nset = \"rnn.w_scale=0.9\"\n";
    let e = ConfigText::load(None, one, "s", &[]).unwrap().variants("run").unwrap_err().to_string();
    assert!(e.contains("`set` is a list of \"section.key=value\" strings"), "{e}");
    // A variant's bad value is said to come from its `set` list, not from the base file's line.
    let typed = "[train]\nlr = 0.1\n[[variant]]\nname = \"v\"\nset = [\"train.lr=\\\"fast\\\"\"]\n";
    let mut text = ConfigText::load(None, typed, "t", &[]).unwrap();
    let (name, table) = text.variants("run").unwrap().remove(0);
    let e = Config::from_table(table, &format!("{} [[variant]] {name}", text.origin))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`train.lr`") && e.contains("given by its `set` list") && !e.contains("line 2"),
        "{e}"
    );
}

/// A section another command reads (`[landscape]` in a `train` config) was "unknown field
/// `landscape`", as if a key were misspelt: now it names the command that reads it.
#[test]
fn a_section_of_another_command_names_that_command() {
    for (text, section, owner) in [
        ("[landscape]\npoints = 5\n", "[landscape]", "batchscope landscape"),
        ("[[variant]]\nname = \"a\"\n", "[[variant]]", "batchscope rnn` and `batchscope depth"),
        ("[rnn]\nhidden = 4\n", "[rnn]", "batchscope rnn"),
    ] {
        let e = Config::from_toml(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(&format!("a {section} section is read by `{owner}")), "{e}");
        assert!(e.contains("`model`, `data`, `train`"), "{e}");
    }
    // A misspelt key of this command's is still unknown.
    let e = Config::from_toml("[bogus]\nx = 1\n", "t.toml").unwrap_err().to_string();
    assert!(e.contains("unknown field `bogus`"), "{e}");
}

#[test]
fn an_unknown_name_gets_the_closest_expected_one() {
    use super::type_hints::unknown_field_meant;
    let one_of = "unknown field `trian`, expected one of `model`, `data`, `train`";
    let meant = unknown_field_meant(one_of).expect("a suggestion");
    assert_eq!(
        meant,
        "unknown field `trian` (did you mean `train`?), expected one of `model`, `data`, `train`"
    );
    let two = "unknown field `widht`, expected `layers` or `width`";
    assert!(unknown_field_meant(two).is_some_and(|m| m.contains("did you mean `width`?")));
    assert_eq!(unknown_field_meant("unknown field `zzz`, expected `layers` or `width`"), None);
}
