# Posts: the index, post pages, the editor, comments, search, uploads.
date = { $month ->
        [1] January
        [2] February
        [3] March
        [4] April
        [5] May
        [6] June
        [7] July
        [8] August
        [9] September
        [10] October
        [11] November
       *[12] December
    } { $day }, { $year }
index-title = Latest posts
index-empty = No posts yet.
pages-label = Pages
pages-prev = Newer
pages-next = Older
post-byline = by { $author }
post-category = in { $name }
post-tags = Tags
post-draft-notice = This is a draft: only its author and editors can see it.
post-edit = Edit
post-delete = Delete
post-not-found = There is no such post.
post-forbidden = You may not change this post.
post-saved = The post is saved.
post-deleted = The post is deleted.
post-error-title = A title is 1 to 200 characters, without control characters.
post-error-body = The body is 1 byte to 100 KiB of Markdown.
post-error-category = A category is at most 100 characters.
post-error-tags = A post has at most 10 tags of at most 64 characters each.
post-error-image-size = The image is too large: at most { $max } KiB.
post-error-image-type = The image must be a PNG, JPEG, GIF or WebP file.
new-title = New post
edit-title = Edit “{ $title }”
field-title = Title
field-body = Text (Markdown)
field-category = Category
field-tags = Tags
field-tags-hint = comma-separated: rust, web
field-image = Image
field-published = Published (otherwise a draft)
editor-save = Save
comments-title = { $count ->
        [0] No comments
        [one] One comment
       *[other] { $count } comments
    }
comments-none = Be the first to comment.
comment-removed = This comment was hidden by a moderator.
comment-hidden = hidden
comment-reply = Reply
comment-new = Add a comment
comment-replying = Reply to { $name }
comment-body = Comment
comment-submit = Post comment
comment-cancel-reply = Cancel reply
comment-login = Log in to comment.
comment-saved = Your comment is posted.
comment-error-body = A comment is 1 to 5000 characters of text.
comment-error-parent = You can only reply to a comment of this post.
comment-error-draft = Comments open when the post is published.
search-title = Search
search-label = Words to find
search-sort = Order
sort-newest = Newest first
sort-oldest = Oldest first
sort-title = By title
search-submit = Search
search-count = { $count ->
        [0] No posts found.
        [one] One post found.
       *[other] { $count } posts found.
    }
search-too-long = A search is at most { $max } characters.
