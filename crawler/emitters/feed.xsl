<?xml version="1.0" encoding="utf-8"?>
<!-- Shows an RSS 2.0 or Atom output as a page in a browser that still applies XSLT.
     Text only (no disable-output-escaping): item HTML is never injected into the page. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="utf-8" doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="rss/channel/title | atom:feed/atom:title"/></title>
        <style>
          body{max-width:46rem;margin:2rem auto;padding:0 1rem;font:16px/1.7 system-ui,sans-serif}
          .meta{color:#666;font-size:.875rem}
          .note{background:#f4f4f4;padding:.5rem 1rem}
        </style>
      </head>
      <body>
        <p class="note">This is a news feed. Copy its address into your feed reader to
          subscribe.</p>
        <xsl:apply-templates select="rss/channel | atom:feed"/>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="channel">
    <h1><xsl:value-of select="title"/></h1>
    <p><xsl:value-of select="description"/></p>
    <xsl:for-each select="item">
      <h2><a href="{link}"><xsl:value-of select="title"/></a></h2>
      <p class="meta"><xsl:value-of select="pubDate"/> · <xsl:value-of select="source"/></p>
      <p><xsl:value-of select="description"/></p>
    </xsl:for-each>
  </xsl:template>

  <xsl:template match="atom:feed">
    <h1><xsl:value-of select="atom:title"/></h1>
    <p><xsl:value-of select="atom:subtitle"/></p>
    <xsl:for-each select="atom:entry">
      <h2><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a></h2>
      <p class="meta"><xsl:value-of select="atom:published"/> · <xsl:value-of select="atom:source/atom:title"/></p>
      <p><xsl:value-of select="atom:summary"/></p>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
