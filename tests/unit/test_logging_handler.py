"""Exceptions the application logs instead of raising are recorded too, once."""

from __future__ import annotations

import logging

import pytest

import faultlens


@pytest.fixture
def app_logger():
    handler = faultlens.LoggingHandler()
    logger = logging.getLogger("myapp.jobs")
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def test_logger_exception_is_recorded_with_the_logger_and_scrubbed_message(app_otel, app_logger):
    try:
        raise TimeoutError("db slow")
    except TimeoutError:
        app_logger.exception("job %s failed, token=%s", 7, "s3cr3t")
    [(_, event)] = app_otel.exception_events()
    assert event.attributes["faultlens.error.code"] == "EXE_TIMEOUT"
    assert event.attributes["faultlens.context.logger"] == "myapp.jobs"
    assert event.attributes["faultlens.context.log_message"] == "job 7 failed, token=[REDACTED]"


def test_records_without_an_exception_or_below_error_are_ignored(app_otel, app_logger):
    app_logger.error("no exception here")
    try:
        raise ValueError("x")
    except ValueError:
        app_logger.warning("handled", exc_info=True)
    assert app_otel.exception_events() == []


def test_a_logged_then_reraised_exception_is_recorded_once(app_otel, app_logger):
    @faultlens.instrument
    def job():
        try:
            raise KeyError("k")
        except KeyError:
            app_logger.exception("lookup failed")
            raise

    with pytest.raises(KeyError):
        job()
    assert len(app_otel.exception_events()) == 1


def test_faultlens_own_log_lines_are_never_recorded(app_otel):
    handler = faultlens.LoggingHandler()
    logger = logging.getLogger("faultlens")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("internal")
        except RuntimeError:
            logger.error("faultlens problem", exc_info=True)
    finally:
        logger.removeHandler(handler)
    assert app_otel.exception_events() == []
