module github.com/omscloud/omscloud/redisconf

go 1.26.6
