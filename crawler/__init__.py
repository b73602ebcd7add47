"""crawler: a feed aggregator for Chinese-language news.

Kept empty on purpose: importing crawler.types must not pull in httpx, bs4 or APScheduler.
"""
