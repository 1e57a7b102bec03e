# 文章：首页、文章页、编辑器、评论、搜索、上传。
date = { $year }年{ $month }月{ $day }日
index-title = 最新文章
index-empty = 还没有文章。
pages-label = 分页
pages-prev = 较新
pages-next = 较早
post-byline = 作者：{ $author }
post-category = 分类：{ $name }
post-tags = 标签
post-draft-notice = 这是草稿：只有作者和编辑可以看到。
post-edit = 编辑
post-delete = 删除
post-not-found = 没有这篇文章。
post-forbidden = 你不能修改这篇文章。
post-saved = 文章已保存。
post-deleted = 文章已删除。
post-error-title = 标题为 1 到 200 个字符，不含控制字符。
post-error-body = 正文为 1 字节到 100 KiB 的 Markdown。
post-error-category = 分类最多 100 个字符。
post-error-tags = 一篇文章最多 10 个标签，每个最多 64 个字符。
post-error-image-size = 图片太大：最多 { $max } KiB。
post-error-image-type = 图片必须是 PNG、JPEG、GIF 或 WebP 文件。
new-title = 新文章
edit-title = 编辑“{ $title }”
field-title = 标题
field-body = 正文（Markdown）
field-category = 分类
field-tags = 标签
field-tags-hint = 用逗号分隔：rust, web
field-image = 图片
field-published = 发布（否则为草稿）
editor-save = 保存
comments-title = { $count ->
        [0] 暂无评论
       *[other] { $count } 条评论
    }
comments-none = 来发表第一条评论吧。
comment-removed = 这条评论已被管理员隐藏。
comment-hidden = 已隐藏
comment-reply = 回复
comment-new = 发表评论
comment-replying = 回复 { $name }
comment-body = 评论
comment-submit = 发表
comment-cancel-reply = 取消回复
comment-login = 登录后评论。
comment-saved = 评论已发表。
comment-error-body = 评论为 1 到 5000 个字符的文本。
comment-error-parent = 只能回复这篇文章的评论。
comment-error-draft = 文章发布后才能评论。
search-title = 搜索
search-label = 要查找的词
search-sort = 排序
sort-newest = 最新在前
sort-oldest = 最早在前
sort-title = 按标题
search-submit = 搜索
search-count = { $count ->
        [0] 没有找到文章。
       *[other] 找到 { $count } 篇文章。
    }
search-too-long = 搜索最多 { $max } 个字符。
