use super::{file::FileError, *};

const FULL: &str = r#"# every key
master = "bond7"
slaves = ["eth0", "eth1"]
max_clients = 1000
updelay = 200
downdelay = 100
primary = "eth1"
primary_reselect = "failure"
lp_interval = 2
rebalance_interval = 0
"#;

fn lines(errors: &[FileError]) -> Vec<usize> {
    errors.iter().map(|e| e.line).collect()
}

#[test]
fn a_full_file_gives_every_option() {
    assert_eq!(file::check(FULL), [], "no errors");
    let options = file::parse(FULL).settings.options().expect("valid");
    assert_eq!(options.master, "bond7");
    assert_eq!(options.slaves, ["eth0", "eth1"]);
    assert_eq!(options.max_clients, 1000);
    assert_eq!(options.delays, Delays { up_ms: 200, down_ms: 100 });
    assert_eq!(options.primary.as_deref(), Some("eth1"));
    assert_eq!(options.primary_reselect, Reselect::Failure);
    assert_eq!((options.lp_interval_s, options.rebalance_interval_s), (2, 0));
}

#[test]
fn defaults_fill_what_is_not_given() {
    let options = file::parse("slaves = [\"eth0\"]\n").settings.options().expect("valid");
    assert_eq!(options.master, DEFAULT_MASTER);
    assert_eq!(options.max_clients, DEFAULT_MAX_CLIENTS);
    assert_eq!(options.delays, Delays { up_ms: 0, down_ms: 0 });
    assert_eq!(options.primary_reselect, Reselect::Always);
    assert_eq!((options.lp_interval_s, options.rebalance_interval_s), (1, 10));
}

#[test]
fn three_errors_are_three_lines() {
    let text = "slaves = [\"eth0\", \"eth1\"]\nlp_interval = 0\nprimary_reselect = \"sometimes\"\n\
                colour = \"blue\"\n";
    let errors = file::check(text);
    assert_eq!(lines(&errors), [2, 3, 4], "{errors:#?}");
    assert!(errors[0].message.contains("lp_interval 0 is out of range"), "{errors:#?}");
    assert!(errors[1].message.contains("sometimes"), "{errors:#?}");
    assert!(errors[2].message.contains("colour"), "{errors:#?}");
    let path = Path::new("/etc/alb/alb0.toml");
    assert_eq!(errors[0].at(path), format!("/etc/alb/alb0.toml:2: {}", errors[0].message));
}

#[test]
fn every_kind_of_error_is_found_with_its_line() {
    let text = r#"master = "alb0"
slaves = [
  "eth0",
  "eth1",
  "eth0",
]
primary = "eth9"
updelay = "soon"
max_clients = 0
"#;
    let errors = file::check(text);
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
    assert_eq!(errors.len(), 4, "{found:#?}");
    assert_eq!(errors[0].line, 5, "the second eth0: {found:#?}");
    assert!(errors[0].message.contains("eth0 is named twice"), "{found:#?}");
    assert_eq!(errors[1].line, 7, "{found:#?}");
    assert!(errors[1].message.contains("primary eth9 is not one of the slaves"), "{found:#?}");
    assert_eq!(errors[2].line, 8, "{found:#?}");
    assert!(errors[2].message.contains("updelay"), "a wrong type names its key: {found:#?}");
    assert_eq!(errors[3].line, 9, "{found:#?}");
    assert!(errors[3].message.contains("max_clients must be at least 1"), "{found:#?}");
}

#[test]
fn syntax_errors_are_all_reported() {
    let text = "slaves = [\"eth0\"]\nlp_interval = = 3\nupdelay 5\n";
    let errors = file::check(text);
    assert!(errors.len() >= 2, "both bad lines: {errors:#?}");
    assert!(lines(&errors).contains(&2) && lines(&errors).contains(&3), "{errors:#?}");
}

#[test]
fn a_missing_slave_list_and_a_bad_master_are_errors() {
    let errors = file::check("master = \"a/b\"\n");
    assert_eq!(lines(&errors), [1, 1], "{errors:#?}");
    assert!(errors.iter().any(|e| e.message.contains("no slaves")), "{errors:#?}");
    assert!(errors.iter().any(|e| e.message.contains("not a valid interface name")));
}

#[test]
fn tables_and_other_types_are_refused() {
    let errors = file::check("slaves = \"eth0\"\n[extra]\nx = 1\n");
    assert_eq!(lines(&errors), [1, 2], "{errors:#?}");
}

#[test]
fn the_command_line_wins_field_by_field() {
    let from_file = file::parse(FULL).settings;
    let cli = Settings {
        slaves: Some(vec!["eth2".to_owned()]),
        primary: Some("eth2".to_owned()),
        lp_interval: Some(5),
        primary_reselect: Some(PrimaryReselect::Better),
        ..Settings::default()
    };
    let merged = cli.over(&from_file);
    assert_eq!(merged.slaves.as_deref(), Some(&["eth2".to_owned()][..]));
    assert_eq!(merged.primary.as_deref(), Some("eth2"));
    assert_eq!(merged.lp_interval, Some(5));
    assert_eq!(merged.primary_reselect, Some(PrimaryReselect::Better));
    assert_eq!(merged.master.as_deref(), Some("bond7"), "from the file");
    assert_eq!(merged.updelay, Some(200), "from the file");
    assert!(cli.has("lp_interval") && !cli.has("updelay"));
    assert_eq!(Settings::default().over(&from_file), from_file);
    assert_eq!(from_file.over(&Settings::default()), from_file);
}

#[test]
fn problems_are_worded_after_their_source() {
    let dir = std::env::temp_dir().join(format!("alb-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("alb0.toml");
    std::fs::write(&path, "slaves = [\"eth0\"]\nlp_interval = 0\n").expect("write");
    let cli = Settings { updelay: Some(u64::MAX), ..Settings::default() };
    let errors = resolve(cli, Some(path.clone())).expect_err("two problems");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let at_line_2 = "lp_interval 0 is out of range: allowed values 1 - 2147483647 (s)";
    assert_eq!(errors[0], format!("{}:2: {at_line_2}", path.display()), "the file's first");
    assert!(errors[1].starts_with("--updelay: updelay 18446744073709551615"), "{errors:#?}");
    let cli = Settings { lp_interval: Some(0), ..Settings::default() };
    let errors = resolve(cli, None).expect_err("no slaves, lp_interval 0");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("no slaves"), "{errors:#?}");
    assert!(errors[1].starts_with("--lp-interval: lp_interval 0"), "{errors:#?}");
}

#[test]
fn a_file_that_cannot_be_read_says_so() {
    let source = Source { path: "/nonexistent/alb.toml".into(), cli: Settings::default() };
    let errors = load(&source).expect_err("missing file");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("cannot read /nonexistent/alb.toml"), "{errors:?}");
}

#[test]
fn flags_are_named_after_keys() {
    assert_eq!(flag("slaves"), "--iface");
    assert_eq!(flag("primary_reselect"), "--primary-reselect");
}

/// Every key of the file in its bad forms (issue 20's table of bad input):
/// each is one error, on its line, that says what is wrong with it. A file
/// `alb config check` passes is one a start takes.
#[test]
fn every_key_in_its_bad_forms_is_one_error_on_its_line() {
    let cases: &[(&str, &str)] = &[
        ("master = 7", "master: invalid type"),
        ("master = \"averyveryverylong\"", "must have 1 to 14 characters"),
        ("master = \"a/b\"", "not a valid interface name"),
        ("slaves = \"eth0\"", "slaves: invalid type"),
        ("slaves = []", "no slaves"),
        ("slaves = [\"eth0\", 3]", "slaves: invalid type"),
        ("slaves = [\"eth0\", \"e th1\"]", "not a valid interface name"),
        ("max_clients = -1", "max_clients: invalid value"),
        ("max_clients = 0", "max_clients must be at least 1"),
        ("updelay = -5", "updelay: invalid value"),
        ("updelay = 2147483648", "updelay 2147483648 is out of range"),
        ("downdelay = \"x\"", "downdelay: invalid type"),
        ("downdelay = 2147483648", "downdelay 2147483648 is out of range"),
        ("primary = 1", "primary: invalid type"),
        ("primary = \"eth9\"", "primary eth9 is not one of the slaves"),
        ("primary_reselect = \"sometimes\"", "unknown variant `sometimes`"),
        ("lp_interval = 0", "lp_interval 0 is out of range"),
        ("lp_interval = true", "lp_interval: invalid type"),
        ("rebalance_interval = 1.5", "rebalance_interval: invalid type"),
        ("vm_ageing = 0", "vm_ageing 0 is out of range"),
        ("client_sampling = 0", "client_sampling 0 is out of range"),
        ("client_sampling = 4294967296", "client_sampling: invalid value"),
        ("keep_datapath = \"yes\"", "keep_datapath: invalid type"),
        ("metrics_listen = \"localhost\"", "metrics_listen: invalid socket address"),
        ("metrics_listen = \"198.18.0.1:9464\"", "is not a loopback address"),
        ("metrics_allow_remote = true", "needs metrics_listen"),
        ("metrics_allow_remote = 1", "metrics_allow_remote: invalid type"),
        ("no_filter_sync = true", "unknown key `no_filter_sync`"),
        ("colour = 1", "unknown key `colour`"),
    ];
    for (bad, says) in cases {
        let (text, line) = if bad.starts_with("slaves") {
            (format!("{bad}\n"), 1)
        } else {
            (format!("slaves = [\"eth0\"]\n{bad}\n"), 2)
        };
        let errors = file::check(&text);
        let found: Vec<(usize, &str)> =
            errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(errors.len(), 1, "{bad:?}: one error, not {found:#?}");
        assert_eq!(errors[0].line, line, "{bad:?}: on its line: {found:#?}");
        assert!(errors[0].message.contains(says), "{bad:?} should say {says:?}: {found:#?}");
    }
}
