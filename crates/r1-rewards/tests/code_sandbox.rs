//! Hostile code is contained and scores 0; the host is untouched. Skipped (with a
//! note) when python3 is absent.

use std::time::{Duration, Instant};

use r1_rewards::rewards::code::{run_code_tests, CodeOptions};
use r1_rewards::sandbox::{find_python, is_root, network_isolation_available, Limits};
use serde_json::json;

fn opts() -> CodeOptions {
    CodeOptions {
        limits: Limits {
            wall_s: 3.0,
            cpu_s: 2,
            memory_mb: 512,
            max_output_bytes: 64 * 1024,
            ..Limits::default()
        },
        ..CodeOptions::default()
    }
}

fn python() -> bool {
    if find_python().is_none() {
        eprintln!("note: python3 not found; code sandbox tests skipped");
        return false;
    }
    true
}

fn mbpp(code: &str) -> (usize, usize) {
    let extra = json!({"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]});
    run_code_tests(code, &extra, &opts()).expect("runs")
}

/// Hostile programs get one test (the verdict is the same) and tight limits.
fn hostile(code: &str) -> (usize, usize) {
    let extra = json!({"tests": ["assert add(1, 2) == 3"]});
    let mut o = opts();
    o.limits.wall_s = 2.0;
    o.limits.cpu_s = 1;
    run_code_tests(code, &extra, &o).expect("runs")
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn correct_and_partial_solutions() {
    if !python() {
        return;
    }
    assert_eq!(mbpp("def add(a, b):\n    return a + b\n"), (2, 2));
    assert_eq!(mbpp("def add(a, b):\n    return 3\n"), (1, 2));
    let he = json!({"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n", "entry_point": "add"});
    assert_eq!(
        run_code_tests("def add(a, b):\n    return a + b\n", &he, &opts()).unwrap(),
        (1, 1)
    );
    assert_eq!(
        run_code_tests("def add(a, b):\n    return a - b\n", &he, &opts()).unwrap(),
        (0, 1)
    );
}

#[test]
fn stdin_stdout_tests() {
    if !python() {
        return;
    }
    let extra =
        json!({"tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10"}]});
    let code = "a, b = map(int, input().split())\nprint(a + b)\n";
    assert_eq!(run_code_tests(code, &extra, &opts()).unwrap(), (2, 2));
    let apps = json!({"inputs": ["2\n"], "outputs": ["0.5000000\n"]});
    assert_eq!(
        run_code_tests("print(1/int(input()))", &apps, &opts()).unwrap(),
        (1, 1)
    );
    assert_eq!(
        run_code_tests("import sys; sys.exit(0)", &extra, &opts()).unwrap(),
        (0, 2)
    );
}

#[test]
fn exit_before_tests_scores_zero() {
    if !python() {
        return;
    }
    assert_eq!(mbpp("import sys\nsys.exit(0)\n"), (0, 2));
    assert_eq!(mbpp("import os\nos._exit(0)\n"), (0, 2));
    assert_eq!(mbpp("print('R1-PASS 0')\nimport os\nos._exit(0)\n"), (0, 2));
}

#[test]
fn always_equal_object_scores_zero() {
    if !python() {
        return;
    }
    let code = "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\ndef add(a, b):\n    return A()\n";
    assert_eq!(mbpp(code), (0, 2));
    let sub =
        "class I(int):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return I(7)\n";
    assert_eq!(mbpp(sub), (0, 2));
    let he = json!({"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"});
    assert_eq!(run_code_tests(code, &he, &opts()).unwrap(), (0, 1));
}

#[test]
fn infinite_loop_and_huge_allocation() {
    if !python() {
        return;
    }
    assert_eq!(timed(|| hostile("while True:\n    pass\n")), (0, 1));
    assert_eq!(
        timed(|| hostile("x = bytearray(8 * 1024**3)\ndef add(a,b): return a+b\n")),
        (0, 1)
    );
    assert_eq!(timed(|| hostile("import time\ntime.sleep(100)\n")), (0, 1));
}

#[test]
fn printing_gigabytes_is_cut() {
    if !python() {
        return;
    }
    let code = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n";
    assert_eq!(timed(|| hostile(code)), (0, 1));
    let extra = json!({"tests": [{"input": "", "output": "x"}]});
    assert_eq!(
        timed(|| run_code_tests(code, &extra, &opts()).unwrap()),
        (0, 1)
    );
}

#[test]
fn fork_bomb_is_contained() {
    if !python() {
        return;
    }
    let code = "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass\n";
    assert_eq!(timed(|| hostile(code)), (0, 1));
    // The host can still start processes afterwards.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[test]
fn environment_secrets_are_not_visible() {
    if !python() {
        return;
    }
    std::env::set_var("R1_TEST_SECRET", "hunter2");
    let extra = json!({"tests": [{"input": "", "output": "hunter2"}]});
    let code = "import os\nprint(os.environ.get('R1_TEST_SECRET', 'none'))\n";
    assert_eq!(run_code_tests(code, &extra, &opts()).unwrap(), (0, 1));
    let code2 = "import os\nprint(open('/proc/%d/environ' % os.getppid()).read())\n";
    assert_eq!(run_code_tests(code2, &extra, &opts()).unwrap(), (0, 1));
}

#[test]
fn writing_outside_the_sandbox_fails() {
    if !python() {
        return;
    }
    if !is_root() {
        eprintln!("note: not root; host-write containment relies on a separate uid, skipped");
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("pwned.txt");
    let code = format!(
        "open({:?}, 'w').write('x')\ndef add(a, b): return a + b\n",
        target.to_str().unwrap()
    );
    let _ = mbpp(&code);
    assert!(!target.exists(), "sandboxed code wrote to the host");
    // Its own working directory is writable.
    assert_eq!(
        mbpp("open('scratch.txt', 'w').write('x')\ndef add(a, b): return a + b\n"),
        (2, 2)
    );
}

#[test]
fn network_is_unreachable() {
    if !python() {
        return;
    }
    if !network_isolation_available() {
        eprintln!("note: network namespaces not permitted here; network test skipped");
        return;
    }
    // Connect to a port on this machine: inside an empty namespace even loopback
    // is down, so this fails; outside it would at least reach the host stack.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ndef add(a, b): return a + b\n"
    );
    assert_eq!(mbpp(&code), (0, 2));
}
