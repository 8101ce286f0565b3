#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_docker_fuzz::check_pull_progress(data));
