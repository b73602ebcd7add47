-- The schema (version 1) the first release created on SQLite; tests/test_stories.py
-- migrates a database made with it.
CREATE TABLE articles (
	id INTEGER NOT NULL, 
	uid VARCHAR(64) NOT NULL, 
	canonical_url TEXT, 
	content_hash VARCHAR(64) NOT NULL, 
	title TEXT NOT NULL, 
	link TEXT, 
	content_html TEXT NOT NULL, 
	summary TEXT NOT NULL, 
	author TEXT, 
	tags TEXT NOT NULL, 
	extra TEXT NOT NULL, 
	comments TEXT NOT NULL, 
	published_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	first_seen_at DATETIME NOT NULL, 
	changed_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (uid)
);
CREATE INDEX ix_articles_changed_at ON articles (changed_at);
CREATE INDEX ix_articles_published ON articles (published_at);
CREATE INDEX ix_articles_canonical_url ON articles (canonical_url);
CREATE INDEX ix_articles_content_hash ON articles (content_hash);
CREATE TABLE sources (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	url TEXT NOT NULL, 
	format VARCHAR(40) NOT NULL, 
	enabled BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE article_sources (
	id INTEGER NOT NULL, 
	source_id INTEGER NOT NULL, 
	article_id INTEGER NOT NULL, 
	item_key TEXT NOT NULL, 
	link TEXT, 
	content_hash VARCHAR(64) NOT NULL, 
	seen_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_source_item UNIQUE (source_id, item_key), 
	FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE, 
	FOREIGN KEY(article_id) REFERENCES articles (id) ON DELETE CASCADE
);
CREATE INDEX ix_article_sources_source_id ON article_sources (source_id);
CREATE INDEX ix_article_sources_article_id ON article_sources (article_id);
CREATE TABLE fetch_state (
	source_id INTEGER NOT NULL, 
	etag TEXT, 
	last_modified VARCHAR(100), 
	body_hash VARCHAR(64), 
	failed_body_hash VARCHAR(64), 
	last_fetch_at DATETIME, 
	last_success_at DATETIME, 
	last_status INTEGER, 
	last_error TEXT, 
	error_count INTEGER NOT NULL, 
	next_check_at DATETIME, 
	lease_until DATETIME, 
	lease_owner VARCHAR(100), 
	PRIMARY KEY (source_id), 
	FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE
);
CREATE INDEX ix_fetch_state_next_check_at ON fetch_state (next_check_at);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
