//! End-to-end: the blocking daemon `lonc-std` against lond-sim on loopback, through the
//! shared acceptance suite (`lonc_tests::suite`).

use lonc_tests::e2e::STD;

lonc_tests::suite_tests! {
    STD;
    plain_and_encrypted,
    big_reply,
    pipelined_requests_on_one_connection,
    pipelined_requests_over_several_links,
    concurrent_clients,
    lond_restart,
    dead_peer_answers_at_once,
    usr1_revives_a_dead_peer,
    close_connection_exit_reopens_the_link,
    delayed_files_go_first_in_name_order,
    delayed_files_match_the_exact_peer_id,
    delayed_file_dropped_in_while_running,
    hup_adds_and_removes_peers,
    usr2_adds_and_removes_peers,
    term_cleans_up,
    second_instance_refuses,
    usr1_writes_the_status_file,
    over_long_request,
    every_byte_but_lf_round_trips,
    vanishing_clients,
    malformed_enc_reply,
    endless_reply_line,
    lond_closes_during_handshake,
    lond_refuses,
    lond_stalls_the_handshake,
    log_keeps_secrets,
    check_config_prints_settings_and_peers,
    check_config_reports_errors,
    send_command,
    status_command,
}
